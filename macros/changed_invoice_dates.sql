{#-
    The models rebuilt by invoice date (int_customer_invoices, int_customer_products, fct_customer_daily_sales)
    stamp every row they write with `lines_loaded_through`, the latest load they had taken in. A later build
    rebuilds only the invoice dates that loads since then changed: every date logged in `loaded_dates`
    (int_invoice_lines__loaded_dates) for a batch loaded after that stamp, the dates of that batch's earlier
    versions included (a file loaded again with --replace may have lost some). Loads and builds take turns (the
    writer lock), so no load is committed with a time before a build that did not see it.

    changed_invoice_dates(loaded_dates) returns those dates as 'YYYY-MM-DD' strings, queried when the model runs
    (incremental builds only), so that the model and its pre-hook agree on one list computed before either writes.
-#}
{% macro changed_invoice_dates(loaded_dates) -%}
    {%- if not execute or not is_incremental() -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        select distinct logged.invoice_date
        from {{ loaded_dates }} as logged
        where
            logged.invoice_date is not null
            and logged.batch_id in (
                select newer.batch_id
                from {{ loaded_dates }} as newer
                cross join (select max(built.lines_loaded_through) as loaded_through from {{ this }} as built) as stamp
                where stamp.loaded_through is null or newer.batch_loaded_at > stamp.loaded_through
            )
        order by logged.invoice_date
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | map('string') | list) }}
{%- endmacro %}

{#- `column` among `dates` (a list of 'YYYY-MM-DD' strings, as changed_invoice_dates returns), as SQL; false for an
    empty list. -#}
{% macro in_dates(column, dates) -%}
    {%- if dates -%}
        {{ column }} in ({% for day in dates %}cast('{{ day }}' as date){{ ", " if not loop.last }}{% endfor %})
    {%- else -%}
        1 = 0
    {%- endif -%}
{%- endmacro %}

{#- `column` on or after `day` (a 'YYYY-MM-DD' string), as SQL; false for none. -#}
{% macro on_or_after_date(column, day) -%}
    {%- if day -%}
        {{ column }} >= cast('{{ day }}' as date)
    {%- else -%}
        1 = 0
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of the models rebuilt by invoice date: their rows of the changed dates go before the new ones come. -#}
{% macro delete_changed_invoice_dates(loaded_dates, date_column='invoice_date') -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where {{ in_dates(date_column, changed_invoice_dates(loaded_dates)) }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- The stamp of the rows a build writes: the latest load logged in `loaded_dates`. -#}
{% macro lines_loaded_through(loaded_dates) -%}
    (select max(logged.batch_loaded_at) from {{ loaded_dates }} as logged)
{%- endmacro %}

{#- Post-hook of int_customer_products: pairs left without any purchase (a file loaded again without them). -#}
{% macro delete_products_without_purchases() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where first_bought_on is null
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of int_customer_new_products: days that are no longer any product's first (written with 0). -#}
{% macro delete_days_without_new_products() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where n_new_products = 0
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{{
    config(
        materialized=materialization_by_load(),
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['invoice_date']}, {'columns': ['lines_loaded_through']}],
        pre_hook="{{ delete_changed_invoice_dates(ref('int_invoice_lines__loaded_dates')) }}",
        post_hook="{{ analyze_table() }}",
    )
}}

{#-
    One row per customer, invoice and invoice date of the kept lines, split into purchased and returned amounts.
    Built by invoice date: a build rebuilds only the dates that loads since the last one changed (a new day, late
    lines dated inside a built period, a file loaded again), every date on the first build or a full refresh.
-#}
{%- set changed_dates = changed_invoice_dates(ref('int_invoice_lines__loaded_dates')) %}

with kept_lines as (

    select * from {{ ref('int_invoice_lines__cleaned') }}
    {%- if is_incremental() %}
        where {{ in_dates('invoice_date', changed_dates) }}
    {%- endif %}

),

per_invoice as (

    select
        customer_id,
        invoice_no,
        invoice_date,
        min(country) as country,
        sum(case when not is_return then line_revenue else 0 end) as purchase_revenue,
        sum(case when is_return then -line_revenue else 0 end) as returned_value,
        sum(case when not is_return then quantity else 0 end) as purchased_items,
        sum(case when is_return then -quantity else 0 end) as returned_items,
        count(*) filter (where not is_return) as purchase_lines,
        count(distinct stock_code) filter (where not is_return) as distinct_products_purchased,
        bool_or(not is_return) as has_purchase,
        bool_or(is_return) as has_return
    from kept_lines
    -- an invoice's lines on another day count on that day: nothing dated later is pulled back to its first day
    group by customer_id, invoice_no, invoice_date

)

select
    per_invoice.*,
    {{ lines_loaded_through(ref('int_invoice_lines__loaded_dates')) }} as lines_loaded_through
from per_invoice

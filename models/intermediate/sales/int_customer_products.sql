{{
    config(
        materialized=materialization_by_load(),
        unique_key=['customer_id', 'stock_code'],
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_id', 'stock_code'], 'unique': true},
            {'columns': ['first_bought_on']},
            {'columns': ['lines_loaded_through']},
        ],
        post_hook=[
            "{{ delete_products_without_purchases() }}",
            "{{ analyze_table() }}",
        ],
    )
}}

{#-
    One row per customer and product bought: the first day the customer bought it. Every as-of date counts these
    pairs (n_distinct_products) instead of re-reading every line up to it.

    Built by invoice date like int_customer_invoices: a build reads only the lines of the dates that loads since
    the last one changed. A pair's first day is the earlier of the one held and the first among those lines; the
    lines of other dates have not changed, so that is exact, except for a pair whose first day was a changed date
    and whose line that day is gone (a file loaded again without it): those pairs alone are recomputed from every
    line, and removed when no purchase of them is left.
-#}
{%- set changed_dates = changed_invoice_dates(ref('int_invoice_lines__loaded_dates')) %}
{%- set read_dates = in_dates('invoice_date', changed_dates) if is_incremental() else '1 = 1' %}

with read_purchase_lines as (

    -- each import read once, so that PostgreSQL inlines it: a CTE read twice is materialized whole, and a day's
    -- build then copied every purchase line to read one date's
    select
        customer_id,
        stock_code,
        invoice_date
    from {{ ref('int_invoice_lines__cleaned') }}
    where not is_return and {{ read_dates }}

),

{%- if is_incremental() %}

purchase_lines as (

    select
        customer_id,
        stock_code,
        invoice_date
    from {{ ref('int_invoice_lines__cleaned') }}
    where not is_return

),

{%- endif %}

first_in_read_lines as (

    select
        customer_id,
        stock_code,
        min(invoice_date) as first_bought_on
    from read_purchase_lines
    group by customer_id, stock_code

),

{%- if is_incremental() %}

read_pairs as (

    -- each pair read again beside the first day held for it; held pairs whose first day is not a changed date
    -- keep it unless an earlier line came
    select
        first_in_read_lines.customer_id,
        first_in_read_lines.stock_code,
        case
            when held.first_bought_on is null then first_in_read_lines.first_bought_on
            when not {{ in_dates('held.first_bought_on', changed_dates) }}
                then least(held.first_bought_on, first_in_read_lines.first_bought_on)
            when first_in_read_lines.first_bought_on <= held.first_bought_on then first_in_read_lines.first_bought_on
        end as first_bought_on
    from first_in_read_lines
    left join {{ this }} as held
        on first_in_read_lines.customer_id = held.customer_id and first_in_read_lines.stock_code = held.stock_code

),

lost_first_day as (

    -- the first purchase day went with a file loaded again: the pair's other lines decide
    select
        customer_id,
        stock_code
    from read_pairs
    where first_bought_on is null
    union all
    select
        held.customer_id,
        held.stock_code
    from {{ this }} as held
    where
        {{ in_dates('held.first_bought_on', changed_dates) }}
        and not exists (
            select 1
            from first_in_read_lines
            where first_in_read_lines.customer_id = held.customer_id and first_in_read_lines.stock_code = held.stock_code
        )

),

still_bought as (

    select
        purchase_lines.customer_id,
        purchase_lines.stock_code,
        min(purchase_lines.invoice_date) as first_bought_on
    from purchase_lines
    inner join lost_first_day
        on purchase_lines.customer_id = lost_first_day.customer_id and purchase_lines.stock_code = lost_first_day.stock_code
    group by purchase_lines.customer_id, purchase_lines.stock_code

),

recomputed as (

    select
        lost_first_day.customer_id,
        lost_first_day.stock_code,
        still_bought.first_bought_on
    from lost_first_day
    left join still_bought
        on lost_first_day.customer_id = still_bought.customer_id and lost_first_day.stock_code = still_bought.stock_code

),

{%- endif %}

first_purchases as (

    {%- if is_incremental() %}
        select * from read_pairs where first_bought_on is not null
        union all
        -- a null first day marks a pair with no purchase left: the post-hook removes it
        select * from recomputed
    {%- else %}
        select * from first_in_read_lines
    {%- endif %}

)

select
    cast(customer_id as bigint) as customer_id,
    cast(stock_code as {{ type_text() }}) as stock_code,
    cast(first_bought_on as date) as first_bought_on,
    {{ lines_loaded_through(ref('int_invoice_lines__loaded_dates')) }} as lines_loaded_through
from first_purchases

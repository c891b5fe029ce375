{{
    config(
        materialized=materialization_by_load(),
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[
            {'columns': ['invoice_date']},
            {'columns': ['customer_id', 'invoice_date'], 'unique': true},
            {'columns': ['lines_loaded_through']},
        ],
        pre_hook="{{ delete_changed_invoice_dates(ref('int_invoice_lines__loaded_dates')) }}",
        post_hook="{{ analyze_table() }}",
    )
}}

{#-
    One row per customer and invoice date: the day's invoices summed once, so that each as-of date's features add
    up days instead of grouping every invoice up to it again (at 10 million lines that grouping was half of a new
    day's feature build). Built by invoice date, as int_customer_invoices: a build rebuilds only the dates that
    loads since the last one changed.
-#}
{%- set changed_dates = changed_invoice_dates(ref('int_invoice_lines__loaded_dates')) %}

with customer_invoices as (

    select * from {{ ref('int_customer_invoices') }}
    {%- if is_incremental() %}
        where {{ in_dates('invoice_date', changed_dates) }}
    {%- endif %}

),

per_day as (

    select
        customer_id,
        invoice_date,
        bool_or(has_purchase) as has_purchase,
        count(*) filter (where has_purchase) as n_purchase_invoices,
        count(*) filter (where has_return) as n_return_invoices,
        sum(purchase_revenue) as purchase_revenue,
        sum(returned_value) as returned_value,
        sum(purchased_items) as purchased_items,
        sum(returned_items) as returned_items,
        sum(purchase_lines) as purchase_lines,
        sum(distinct_products_purchased) filter (where has_purchase) as distinct_products_purchased
    from customer_invoices
    group by customer_id, invoice_date

)

select
    per_day.*,
    -- the invoices' stamp, not the log's: days built from invoices that lag behind the log are rebuilt later
    (select max(built.lines_loaded_through) from {{ ref('int_customer_invoices') }} as built) as lines_loaded_through
from per_day

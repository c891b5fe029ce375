{{
    config(
        materialized='table',
        indexes=[{'columns': ['invoice_date']}],
        post_hook="{{ analyze_table() }}",
    )
}}

{#- One row per customer, invoice and invoice date of the kept lines, split into purchased and returned amounts. -#}
with kept_lines as (

    select * from {{ ref('int_invoice_lines__cleaned') }}

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

select * from per_invoice

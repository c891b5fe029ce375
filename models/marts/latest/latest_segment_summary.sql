{{ config(materialized='view', contract={'enforced': true}) }}

{#- fct_segment_summary at the marts' current as-of date (dim_customers'), for questions without a date filter. -#}

with segment_summary as (

    select * from {{ ref('fct_segment_summary') }}

),

current_as_of as (

    select max(as_of_date) as as_of_date from {{ ref('dim_customers') }}

)

select
    segment_summary.as_of_date,
    segment_summary.segment_id,
    segment_summary.segment_name,
    segment_summary.is_insider,
    segment_summary.n_customers,
    segment_summary.n_insiders,
    segment_summary.customer_share,
    segment_summary.gross_revenue,
    segment_summary.gross_revenue_share,
    segment_summary.net_revenue,
    segment_summary.net_revenue_share,
    segment_summary.expected_revenue_90d,
    segment_summary.expected_revenue_90d_share,
    segment_summary.returned_value,
    segment_summary.return_rate,
    segment_summary.avg_ticket,
    segment_summary.mean_gross_revenue,
    segment_summary.median_gross_revenue,
    segment_summary.mean_recency_days,
    segment_summary.median_recency_days,
    segment_summary.mean_invoices,
    segment_summary.median_invoices,
    segment_summary.mean_items,
    segment_summary.mean_distinct_products,
    segment_summary.mean_basket_size,
    segment_summary.run_id
from segment_summary
inner join current_as_of
    on segment_summary.as_of_date = current_as_of.as_of_date

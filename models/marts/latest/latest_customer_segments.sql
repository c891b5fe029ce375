{{ config(materialized='view', contract={'enforced': true}) }}

{#- fct_customer_segments at the marts' current as-of date (dim_customers'), for questions without a date filter. -#}

with customer_segments as (

    select * from {{ ref('fct_customer_segments') }}

),

current_as_of as (

    select max(as_of_date) as as_of_date from {{ ref('dim_customers') }}

)

select
    customer_segments.customer_id,
    customer_segments.as_of_date,
    customer_segments.segment_id,
    customer_segments.segment_name,
    customer_segments.is_insider,
    customer_segments.program_rank,
    customer_segments.p_alive,
    customer_segments.expected_revenue_90d,
    customer_segments.expected_revenue_365d,
    customer_segments.confidence,
    customer_segments.map_x,
    customer_segments.map_y,
    customer_segments.run_id,
    customer_segments.gross_revenue,
    customer_segments.net_revenue,
    customer_segments.returned_value,
    customer_segments.n_invoices,
    customer_segments.n_items,
    customer_segments.n_returned_items,
    customer_segments.n_distinct_products,
    customer_segments.recency_days,
    customer_segments.avg_ticket,
    customer_segments.avg_basket_size
from customer_segments
inner join current_as_of
    on customer_segments.as_of_date = current_as_of.as_of_date

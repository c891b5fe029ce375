{{ config(contract={'enforced': true}) }}

{#- One row per as-of date and segment: sizes, revenue and shares, feature means and medians. Wide and flat. -#}

with customer_segments as (

    select * from {{ ref('fct_customer_segments') }}

),

per_segment as (

    select
        as_of_date,
        segment_id,
        min(segment_name) as segment_name,
        bool_or(is_insider) as is_insider,
        count(*) as n_customers,
        sum(gross_revenue) as gross_revenue,
        sum(net_revenue) as net_revenue,
        sum(returned_value) as returned_value,
        sum(n_invoices) as n_invoices,
        sum(n_items) as n_items,
        sum(n_returned_items) as n_returned_items,
        avg(gross_revenue) as mean_gross_revenue,
        percentile_cont(0.5) within group (order by gross_revenue) as median_gross_revenue,
        avg(recency_days) as mean_recency_days,
        percentile_cont(0.5) within group (order by recency_days) as median_recency_days,
        avg(n_invoices) as mean_invoices,
        percentile_cont(0.5) within group (order by n_invoices) as median_invoices,
        avg(n_items) as mean_items,
        avg(n_distinct_products) as mean_distinct_products,
        avg(avg_basket_size) as mean_basket_size
    from customer_segments
    group by as_of_date, segment_id

),

with_shares as (

    select
        *,
        {{ safe_divide('n_customers', 'sum(n_customers) over (partition by as_of_date)') }} as customer_share,
        {{ safe_divide('gross_revenue', 'sum(gross_revenue) over (partition by as_of_date)') }}
            as gross_revenue_share,
        {{ safe_divide('net_revenue', 'sum(net_revenue) over (partition by as_of_date)') }} as net_revenue_share,
        {{ safe_divide('n_returned_items', 'n_items') }} as return_rate,
        {{ safe_divide('gross_revenue', 'n_invoices') }} as avg_ticket
    from per_segment

)

select
    cast(as_of_date as date) as as_of_date,
    cast(segment_id as integer) as segment_id,
    cast(segment_name as text) as segment_name,
    cast(is_insider as boolean) as is_insider,
    cast(n_customers as integer) as n_customers,
    cast(customer_share as numeric(8, 6)) as customer_share,
    cast(gross_revenue as numeric(18, 4)) as gross_revenue,
    cast(gross_revenue_share as numeric(8, 6)) as gross_revenue_share,
    cast(net_revenue as numeric(18, 4)) as net_revenue,
    cast(net_revenue_share as numeric(8, 6)) as net_revenue_share,
    cast(returned_value as numeric(18, 4)) as returned_value,
    cast(return_rate as numeric(12, 6)) as return_rate,
    cast(avg_ticket as numeric(14, 4)) as avg_ticket,
    cast(mean_gross_revenue as numeric(18, 4)) as mean_gross_revenue,
    cast(median_gross_revenue as numeric(18, 4)) as median_gross_revenue,
    cast(mean_recency_days as numeric(10, 2)) as mean_recency_days,
    cast(median_recency_days as numeric(10, 2)) as median_recency_days,
    cast(mean_invoices as numeric(10, 2)) as mean_invoices,
    cast(median_invoices as numeric(10, 2)) as median_invoices,
    cast(mean_items as numeric(14, 2)) as mean_items,
    cast(mean_distinct_products as numeric(10, 2)) as mean_distinct_products,
    cast(mean_basket_size as numeric(14, 4)) as mean_basket_size
from with_shares

{{ config(contract={'enforced': true}) }}

{#- One row per current Insider: what a marketing team acts on. -#}

with customers as (

    select * from {{ ref('dim_customers') }}

),

insiders as (

    select
        customer_id,
        as_of_date,
        segment_since,
        insider_since,
        main_country,
        gross_revenue,
        net_revenue,
        n_invoices,
        recency_days,
        avg_ticket,
        return_rate,
        n_distinct_products,
        clv_frequency,
        clv_monetary,
        program_rank,
        p_alive,
        expected_revenue_90d,
        expected_revenue_365d,
        {{ safe_divide('gross_revenue', 'sum(gross_revenue) over ()') }} as share_of_insider_revenue,
        rank() over (order by gross_revenue desc) as revenue_rank
    from customers
    where is_insider

)

select
    cast(customer_id as bigint) as customer_id,
    cast(as_of_date as date) as as_of_date,
    cast(segment_since as date) as segment_since,
    cast(insider_since as date) as insider_since,
    cast(main_country as {{ type_text() }}) as main_country,
    cast(gross_revenue as numeric(18, 4)) as gross_revenue,
    cast(net_revenue as numeric(18, 4)) as net_revenue,
    cast(n_invoices as integer) as n_invoices,
    cast(recency_days as integer) as recency_days,
    cast(avg_ticket as numeric(14, 4)) as avg_ticket,
    cast(return_rate as numeric(12, 6)) as return_rate,
    cast(n_distinct_products as integer) as n_distinct_products,
    cast(clv_frequency as integer) as clv_frequency,
    cast(clv_monetary as numeric(14, 4)) as clv_monetary,
    cast(program_rank as integer) as program_rank,
    cast(p_alive as {{ type_double() }}) as p_alive,
    cast(expected_revenue_90d as numeric(18, 4)) as expected_revenue_90d,
    cast(expected_revenue_365d as numeric(18, 4)) as expected_revenue_365d,
    cast(share_of_insider_revenue as numeric(8, 6)) as share_of_insider_revenue,
    cast(revenue_rank as integer) as revenue_rank
from insiders

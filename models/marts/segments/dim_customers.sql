{{
    config(
        contract={'enforced': true},
        indexes=[{'columns': ['customer_id'], 'unique': true}, {'columns': ['segment_id']}],
    )
}}

{#-
    One row per customer: the segment at the current as-of date (the latest segmented on or before the date of
    macro current_as_of_date, read through macro until_current_as_of), since when the customer has been in it,
    and the features at that date.
-#}

with history as (

    {{ until_current_as_of(ref('fct_customer_segments')) }}

),

current_date_segmented as (

    select max(as_of_date) as as_of_date from history

),

changes as (

    select
        customer_id,
        as_of_date,
        segment_id,
        is_insider,
        lag(segment_id) over (partition by customer_id order by as_of_date) as previous_segment_id,
        lag(is_insider) over (partition by customer_id order by as_of_date) as previous_is_insider
    from history

),

segment_streaks as (

    select
        customer_id,
        max(as_of_date) filter (where previous_segment_id is distinct from segment_id) as segment_since,
        max(as_of_date) filter (
            where is_insider and previous_is_insider is distinct from true
        ) as insider_since
    from changes
    group by customer_id

),

current_rows as (

    select history.*
    from history
    inner join current_date_segmented
        on history.as_of_date = current_date_segmented.as_of_date

),

features as (

    select * from {{ ref('fct_customer_features') }}

),

customers as (

    select
        current_rows.customer_id,
        current_rows.as_of_date,
        current_rows.segment_id,
        current_rows.segment_name,
        current_rows.is_insider,
        current_rows.program_rank,
        current_rows.p_alive,
        current_rows.expected_revenue_90d,
        current_rows.expected_revenue_365d,
        segment_streaks.segment_since,
        features.first_purchase_date,
        features.last_purchase_date,
        features.main_country,
        features.gross_revenue,
        features.net_revenue,
        features.returned_value,
        features.n_invoices,
        features.recency_days,
        features.avg_ticket,
        features.return_rate,
        features.n_distinct_products,
        features.purchase_frequency,
        features.clv_frequency,
        features.clv_recency,
        features.clv_t,
        features.clv_monetary,
        case when current_rows.is_insider then segment_streaks.insider_since end as insider_since
    from current_rows
    inner join segment_streaks
        on current_rows.customer_id = segment_streaks.customer_id
    inner join features
        on
            current_rows.customer_id = features.customer_id
            and current_rows.as_of_date = features.as_of_date

)

select
    cast(customer_id as bigint) as customer_id,
    cast(as_of_date as date) as as_of_date,
    cast(segment_id as integer) as segment_id,
    cast(segment_name as {{ type_text() }}) as segment_name,
    cast(is_insider as boolean) as is_insider,
    cast(program_rank as integer) as program_rank,
    cast(p_alive as {{ type_double() }}) as p_alive,
    cast(expected_revenue_90d as numeric(18, 4)) as expected_revenue_90d,
    cast(expected_revenue_365d as numeric(18, 4)) as expected_revenue_365d,
    cast(segment_since as date) as segment_since,
    cast(insider_since as date) as insider_since,
    cast(first_purchase_date as date) as first_purchase_date,
    cast(last_purchase_date as date) as last_purchase_date,
    cast(main_country as {{ type_text() }}) as main_country,
    cast(gross_revenue as numeric(18, 4)) as gross_revenue,
    cast(net_revenue as numeric(18, 4)) as net_revenue,
    cast(returned_value as numeric(18, 4)) as returned_value,
    cast(n_invoices as integer) as n_invoices,
    cast(recency_days as integer) as recency_days,
    cast(avg_ticket as numeric(14, 4)) as avg_ticket,
    cast(return_rate as numeric(12, 6)) as return_rate,
    cast(n_distinct_products as integer) as n_distinct_products,
    cast(purchase_frequency as numeric(10, 4)) as purchase_frequency,
    cast(clv_frequency as integer) as clv_frequency,
    cast(clv_recency as integer) as clv_recency,
    cast(clv_t as integer) as clv_t,
    cast(clv_monetary as numeric(14, 4)) as clv_monetary
from customers

{{ config(contract={'enforced': true}) }}

{#-
    One row per customer who entered or left the Insiders at the current as-of date, against the one before: the
    latest date segmented on or before the date of macro current_as_of_date (macro until_current_as_of, as
    dim_customers and rpt_insiders read it).
-#}

with customer_segments as (

    {{ until_current_as_of(ref('fct_customer_segments')) }}

),

latest_dates as (

    select
        max(as_of_date) as as_of_date,
        max(as_of_date) filter (
            where as_of_date < (select max(inner_segments.as_of_date) from customer_segments as inner_segments)
        ) as previous_as_of_date
    from customer_segments

),

latest as (

    select customer_segments.*
    from customer_segments
    inner join latest_dates on customer_segments.as_of_date = latest_dates.as_of_date

),

previous as (

    select customer_segments.*
    from customer_segments
    inner join latest_dates on customer_segments.as_of_date = latest_dates.previous_as_of_date

),

changes as (

    select
        latest_dates.as_of_date,
        latest_dates.previous_as_of_date,
        previous.segment_name as previous_segment_name,
        latest.segment_name,
        coalesce(latest.customer_id, previous.customer_id) as customer_id,
        case when coalesce(latest.is_insider, false) then 'entered' else 'left' end as change,
        coalesce(latest.gross_revenue, previous.gross_revenue) as gross_revenue,
        coalesce(latest.net_revenue, previous.net_revenue) as net_revenue,
        coalesce(latest.n_invoices, previous.n_invoices) as n_invoices,
        coalesce(latest.recency_days, previous.recency_days) as recency_days
    from latest
    full outer join previous on latest.customer_id = previous.customer_id
    cross join latest_dates
    where
        latest_dates.previous_as_of_date is not null
        and coalesce(latest.is_insider, false) <> coalesce(previous.is_insider, false)

)

select
    cast(customer_id as bigint) as customer_id,
    cast(as_of_date as date) as as_of_date,
    cast(previous_as_of_date as date) as previous_as_of_date,
    cast(change as {{ type_text() }}) as change,
    cast(previous_segment_name as {{ type_text() }}) as previous_segment_name,
    cast(segment_name as {{ type_text() }}) as segment_name,
    cast(gross_revenue as numeric(18, 4)) as gross_revenue,
    cast(net_revenue as numeric(18, 4)) as net_revenue,
    cast(n_invoices as integer) as n_invoices,
    cast(recency_days as integer) as recency_days
from changes

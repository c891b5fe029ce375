-- Moves out of each segment add up to its size at the earlier date, and moves into it to its size at the later
-- date: nobody is lost or counted twice between two as-of dates.
with sizes as (

    select
        as_of_date,
        segment_id,
        count(*) as n_customers
    from {{ ref('fct_customer_segments') }}
    group by as_of_date, segment_id

),

leaving as (

    select
        from_as_of_date as as_of_date,
        from_segment_id as segment_id,
        sum(n_customers) as n_customers
    from {{ ref('fct_segment_transitions') }}
    where from_segment_id <> 0
    group by from_as_of_date, from_segment_id

),

arriving as (

    select
        to_as_of_date as as_of_date,
        to_segment_id as segment_id,
        sum(n_customers) as n_customers
    from {{ ref('fct_segment_transitions') }}
    where to_segment_id <> 0
    group by to_as_of_date, to_segment_id

),

earlier_dates as (

    select distinct from_as_of_date as as_of_date from {{ ref('fct_segment_transitions') }}

),

later_dates as (

    select distinct to_as_of_date as as_of_date from {{ ref('fct_segment_transitions') }}

)

select
    'leaving' as side,
    sizes.as_of_date,
    sizes.segment_id,
    sizes.n_customers,
    leaving.n_customers as counted
from sizes
inner join earlier_dates on sizes.as_of_date = earlier_dates.as_of_date
left join leaving on sizes.as_of_date = leaving.as_of_date and sizes.segment_id = leaving.segment_id
where leaving.n_customers is distinct from sizes.n_customers

union all

select
    'arriving' as side,
    sizes.as_of_date,
    sizes.segment_id,
    sizes.n_customers,
    arriving.n_customers as counted
from sizes
inner join later_dates on sizes.as_of_date = later_dates.as_of_date
left join arriving on sizes.as_of_date = arriving.as_of_date and sizes.segment_id = arriving.segment_id
where arriving.n_customers is distinct from sizes.n_customers

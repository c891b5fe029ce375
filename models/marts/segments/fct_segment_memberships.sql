{{ config(contract={'enforced': true}, indexes=[{'columns': ['customer_id', 'valid_from'], 'unique': true}]) }}

{#-
    One row per customer and stay in a segment (gaps and islands over the labelled as-of dates): a stay runs from
    the first as-of date the customer was in the segment to the first as-of date in another one (valid_to, null
    while it lasts). Derived from fct_customer_segments in one statement, so a backfill of any number of dates
    costs one build, and re-running a date changes nothing.
-#}

with labelled as (

    select
        customer_id,
        as_of_date,
        segment_id,
        segment_name,
        is_insider
    from {{ ref('fct_customer_segments') }}

),

numbered as (

    select
        labelled.*,
        row_number() over (partition by labelled.customer_id order by labelled.as_of_date)
        - row_number() over (
            partition by labelled.customer_id, labelled.segment_id order by labelled.as_of_date
        ) as stay_key
    from labelled

),

stays as (

    select
        customer_id,
        segment_id,
        stay_key,
        min(as_of_date) as valid_from,
        max(as_of_date) as last_seen_on,
        count(*) as n_as_of_dates,
        bool_or(is_insider) as was_insider,
        {{ value_at_max('segment_name', 'as_of_date') }} as segment_name
    from numbered
    group by customer_id, segment_id, stay_key

),

bounded as (

    select
        stays.*,
        lead(stays.valid_from) over (partition by stays.customer_id order by stays.valid_from) as valid_to
    from stays

)

select
    cast(customer_id as bigint) as customer_id,
    cast(segment_id as integer) as segment_id,
    cast(segment_name as {{ type_text() }}) as segment_name,
    cast(valid_from as date) as valid_from,
    cast(valid_to as date) as valid_to,
    cast(last_seen_on as date) as last_seen_on,
    cast(n_as_of_dates as integer) as n_as_of_dates,
    cast(was_insider as boolean) as was_insider,
    cast(valid_to is null as boolean) as is_current
from bounded

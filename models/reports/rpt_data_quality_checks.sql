{#-
    The data-quality warnings of the latest build, one row per check and subject: each batch's share of rejected,
    duplicate and excluded lines against the batch before it, and the age of the newest kept line at each as-of
    date being built. A failing row is a warning (the run goes on and says so in its summary); errors (keys,
    contracts, impossible values, duplicates) are dbt tests of severity error and stop the run before clustering.
    The limits are the vars dq_share_increase_warn and dq_stale_after_days.
-#}
with quality as (

    select * from {{ ref('rpt_data_quality') }}

),

customer_invoices as (

    select * from {{ ref('int_customer_invoices') }}

),

as_of_spine as (

    {{ as_of_dates() }}

),

batch_shares as (

    select
        batch_id,
        min(source_file) as source_file,
        coalesce(sum(share_of_lines) filter (where rule = 'rejected_at_load'), 0) as rejected_share,
        coalesce(sum(share_of_lines) filter (where rule = 'duplicate_line'), 0) as duplicate_share,
        coalesce(sum(share_of_lines) filter (where rule_order between 1 and 5), 0) as excluded_share
    from quality
    group by batch_id
    having sum(n_lines) > 0

),

latest_batch_pairs as (

    -- each batch against the one loaded before it; only the newest batch is checked, so that a past batch's
    -- warning is not repeated by every later run
    select
        batch_id,
        source_file,
        rejected_share,
        duplicate_share,
        excluded_share,
        lag(batch_id) over (order by batch_id) as previous_batch_id,
        lag(rejected_share) over (order by batch_id) as previous_rejected_share,
        lag(duplicate_share) over (order by batch_id) as previous_duplicate_share,
        lag(excluded_share) over (order by batch_id) as previous_excluded_share,
        batch_id = max(batch_id) over () as is_latest
    from batch_shares

),

share_checks as (

    select
        pairs.batch_id,
        pairs.source_file,
        pairs.previous_batch_id,
        kinds.line_kind,
        case kinds.line_kind
            when 'rejected' then pairs.rejected_share
            when 'duplicate' then pairs.duplicate_share
            else pairs.excluded_share
        end as observed,
        case kinds.line_kind
            when 'rejected' then pairs.previous_rejected_share
            when 'duplicate' then pairs.previous_duplicate_share
            else pairs.previous_excluded_share
        end as baseline
    from latest_batch_pairs as pairs
    cross join (values ('rejected'), ('duplicate'), ('excluded')) as kinds (line_kind)
    where pairs.is_latest and pairs.previous_batch_id is not null

),

newest_line_by_as_of as (

    select
        as_of_spine.as_of_date,
        (
            select max(customer_invoices.invoice_date)
            from customer_invoices
            where customer_invoices.invoice_date <= as_of_spine.as_of_date
        ) as newest_line_date
    from as_of_spine

),

line_ages as (

    select
        as_of_date,
        newest_line_date,
        {{ dbt.datediff('newest_line_date', 'as_of_date', 'day') }}
            as days_since_newest_line
    from newest_line_by_as_of

),

checks as (

    select
        'share_of_' || line_kind || '_lines' as check_name,
        'batch ' || batch_id || ' (' || source_file || ')' as checked_subject,
        observed,
        baseline,
        {{ var('dq_share_increase_warn') }} as warn_above,
        observed - baseline > {{ var('dq_share_increase_warn') }} as is_failing,
        line_kind || ' lines are ' || round(100 * observed, 1) || '% of batch ' || batch_id || ' (' || source_file
        || '), against ' || round(100 * baseline, 1) || '% of batch ' || previous_batch_id as message
    from share_checks

    union all

    select
        'stale_lines' as check_name,
        'as of ' || as_of_date as checked_subject,
        days_since_newest_line as observed,
        null as baseline,
        {{ var('dq_stale_after_days') }} as warn_above,
        coalesce(days_since_newest_line > {{ var('dq_stale_after_days') }}, true) as is_failing,
        case
            when newest_line_date is null then 'no kept line on or before ' || as_of_date
            else 'the newest kept line on or before ' || as_of_date || ' is dated ' || newest_line_date || ', '
                || days_since_newest_line || ' days earlier'
        end as message
    from line_ages

)

select
    check_name::{{ type_text() }} as check_name,
    checked_subject::{{ type_text() }} as checked_subject,
    'warn'::{{ type_text() }} as severity,
    observed::numeric(12, 6) as observed,
    baseline::numeric(12, 6) as baseline,
    warn_above::numeric(12, 6) as warn_above,
    is_failing::boolean as is_failing,
    message::{{ type_text() }} as message
from checks

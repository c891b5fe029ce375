-- The marts that present one current as-of date (dim_customers, rpt_insiders, rpt_insider_changes) all present
-- the same one: the date chosen by `insiders run --as-of` or the as_of_date var (macro until_current_as_of).
-- Returns the dates when they disagree.
with presented as (

    select distinct
        'dim_customers' as relation_name,
        as_of_date
    from {{ ref('dim_customers') }}
    union all
    select distinct
        'rpt_insiders' as relation_name,
        as_of_date
    from {{ ref('rpt_insiders') }}
    union all
    select distinct
        'rpt_insider_changes' as relation_name,
        as_of_date
    from {{ ref('rpt_insider_changes') }}

)

select
    relation_name,
    as_of_date
from presented
where (select count(distinct presented_dates.as_of_date) from presented as presented_dates) > 1

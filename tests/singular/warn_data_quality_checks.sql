{{ config(severity='warn') }}
-- The data-quality warnings of the build (rpt_data_quality_checks): a hand-run `dbt build` reports them as WARN,
-- and `insiders run` lists them in its summary. They never stop a build.
select
    check_name,
    checked_subject,
    message
from {{ ref('rpt_data_quality_checks') }}
where is_failing

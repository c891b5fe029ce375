{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        contract={'enforced': true},
        indexes=[{'columns': ['date_day'], 'unique': true}],
    )
}}

{#-
    One row per calendar day: the time spine MetricFlow joins metrics to (dbt's `time_spine` config in the
    YAML). A fixed calendar, not the data's span, so it never depends on what was loaded and never needs a rebuild
    when later lines arrive; 40 years of days are about 15,000 rows. Incremental, so that a build adds only the days
    it lacks (none, once built): recreating it took 0.7 s of every feature build.
-#}

{%- set first_day = '2000-01-01' -%}
{%- set last_day = '2039-12-31' -%}

with days as (

    select day_start
    from generate_series(
        cast('{{ first_day }}' as date), cast('{{ last_day }}' as date), interval '1 day'
    ) as day_series (day_start)

)

select cast(days.day_start as date) as date_day
from days
{%- if is_incremental() %}
    where not exists (select 1 from {{ this }} as held where held.date_day = cast(days.day_start as date))
{%- endif %}

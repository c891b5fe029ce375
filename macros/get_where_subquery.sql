{#-
    dbt's `where` config for data tests, plus placeholders expanded when the test runs (a test's `where` cannot
    call ref() or source(): dbt renders it while parsing, and checks a test's relations against its parents):
    - `__current_as_of_date__`: the as-of date the segment marts present (dim_customers'). The relationships to
      dim_customers hold only up to that date: a customer first seen later is not in dim_customers yet. Used only
      by tests that ref dim_customers already (their `to`).
    - `__loaded_now__`: the row's batch is one this build loads (macro batches_loaded_now: the loads it logged or
      has not logged yet; every batch when there are none). The line tables are built batch by batch and lines
      of different batches never share a key, so checking those batches checks every line that changed.
    - `__written_now__`: the row carries the latest `lines_loaded_through` of its table: the invoice dates this
      build rebuilt (every row after a first build or a full refresh). Keys of those tables include the date.
    - `__as_of_dates_built_now__`: the row's as_of_date is one `insiders` asked this build for
      (control.feature_dates); every date when none was asked (dbt run by hand). Other dates are not rewritten.
    - `__labelled_now__`: the row's as_of_date was labelled since the segment marts were last built (macro
      record_dates_labelled_now, as this build started). Other dates' labels are not rewritten.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- if '__current_as_of_date__' in where -%}
            {%- set current = '(select max(as_of_date) from ' ~ ref('dim_customers') ~ ')' -%}
            {%- set where = where | replace('__current_as_of_date__', current) -%}
        {%- endif -%}
        {%- if '__loaded_now__' in where -%}
            {%- set where = where | replace('__loaded_now__', '(' ~ in_batches_loaded_now() ~ ')') -%}
        {%- endif -%}
        {%- if '__written_now__' in where -%}
            {%- set where = where | replace('__written_now__', '(' ~ written_now(relation) ~ ')') -%}
        {%- endif -%}
        {%- if '__as_of_dates_built_now__' in where -%}
            {%- set where = where | replace('__as_of_dates_built_now__', as_of_dates_in_control('feature_dates')) -%}
        {%- endif -%}
        {%- if '__labelled_now__' in where -%}
            {%- set where = where | replace('__labelled_now__', as_of_dates_in_control('labelled_now')) -%}
        {%- endif -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') as dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- The rows of `relation` written by its latest build: those with its latest `lines_loaded_through`. On PostgreSQL
    the stamp is queried when the test runs and written in as a literal, so that the test reads those rows through
    the index on the stamp: compared with a subquery, whose value the planner does not know, it read the whole
    table whenever the statistics held one stamp (tables are analyzed only after large changes, macro
    analyze_table). -#}
{% macro written_now(relation) -%}
    {{ return(adapter.dispatch('written_now')(relation)) }}
{%- endmacro %}

{% macro default__written_now(relation) -%}
    {%- set latest = none -%}
    {%- if execute -%}
        {%- set query -%}
            select cast(max(built.lines_loaded_through) as {{ dbt.type_string() }}) from {{ relation }} as built
        {%- endset -%}
        {%- set latest = run_query(query).columns[0].values()[0] -%}
    {%- endif -%}
    {%- if latest is none -%}
        {{ return('lines_loaded_through = (select max(built.lines_loaded_through) from ' ~ relation ~ ' as built)') }}
    {%- endif -%}
    {{ return("lines_loaded_through = cast('" ~ latest ~ "' as timestamptz)") }}
{%- endmacro %}

{% macro spark__written_now(relation) -%}
    {{ return('lines_loaded_through = (select max(built.lines_loaded_through) from ' ~ relation ~ ' as built)') }}
{%- endmacro %}

{#- The as-of dates a control table holds (feature_dates: those `insiders` asked this build for; labelled_now: those
    labelled since the segment marts were last built), as a condition on as_of_date; every date when the table is
    missing or empty (dbt run by hand; nothing labelled yet). The dates are queried when the test runs and written
    in as literals, so that the test reads them through the index on the date: a condition on a subquery (or none)
    read every date ever built, a cost that grew with each day labelled. -#}
{% macro as_of_dates_in_control(table_name) -%}
    {{ return(adapter.dispatch('as_of_dates_in_control')(table_name)) }}
{%- endmacro %}

{% macro default__as_of_dates_in_control(table_name) -%}
    {%- set recorded = api.Relation.create(database=target.database,
        schema=generate_schema_name('control', none) | trim, identifier=table_name) -%}
    {%- if not execute or load_relation(recorded) is none -%}
        {{ return('1 = 1') }}
    {%- endif -%}
    {%- set query -%}
        select distinct cast(held.as_of_date as {{ dbt.type_string() }}) from {{ recorded }} as held order by 1
    {%- endset -%}
    {%- set dates = run_query(query).columns[0].values() | list -%}
    {{ return('(' ~ in_dates('as_of_date', dates) ~ ')' if dates else '1 = 1') }}
{%- endmacro %}

{#- Spark has no control tables: its builds take their dates from vars, and every date is checked. -#}
{% macro spark__as_of_dates_in_control(table_name) -%}
    {{ return('1 = 1') }}
{%- endmacro %}

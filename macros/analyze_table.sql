{#-
    A post-hook for tables: fresh planner statistics right after the build. A table dbt just created has none
    until autovacuum comes by, and the first query that joins it is planned as if it were empty (dim_customers
    took 4 s instead of 40 ms that way): a table never analyzed (every build of a table model) is analyzed whole.
    An incremental build that changed less than a tenth of the rows (a new day) leaves the statistics as they are,
    as autovacuum's default threshold would: analyzing the four tables over lines and days took 1.8 s of such a
    day's build at 10 million lines. One that changed more (a new date of the dated marts while they hold few
    dates) analyzes the columns of the model's indexes alone, those its joins and filters use, which gives the new
    row count too: the whole analyze reads every column of its sample (0.6 s for the features at 10 million lines,
    against 0.1 s). The other columns keep the statistics of the last whole analyze until autovacuum's, which comes
    after the same tenth. Spark plans joins on the sizes it measures while running (adaptive query execution):
    nothing to do there.
-#}
{% macro analyze_table() -%}
    {{ return(adapter.dispatch('analyze_table')()) }}
{%- endmacro %}

{% macro default__analyze_table() -%}
    {%- if config.get('materialized') in ('table', 'incremental') -%}
        {%- set key_columns = [] -%}
        {%- for index in config.get('indexes') or [] -%}
            {%- for column in index['columns'] if adapter.quote(column) not in key_columns -%}
                {%- do key_columns.append(adapter.quote(column)) -%}
            {%- endfor -%}
        {%- endfor -%}
        {#- never analyzed: new (a table model's every build), or its statistics reset. Not reltuples < 0: an index
            built on a new table sets its row count. The counts below are this transaction's, the build's own -#}
        do $$
        begin
            if (
                select coalesce(pg_stat_get_last_analyze_time(tables.oid), pg_stat_get_last_autoanalyze_time(tables.oid))
                    is null
                from pg_class as tables
                where tables.oid = '{{ this }}'::regclass
            ) then
                analyze {{ this }};
            elsif (
                select
                    pg_stat_get_xact_tuples_inserted(tables.oid) + pg_stat_get_xact_tuples_updated(tables.oid)
                    + pg_stat_get_xact_tuples_deleted(tables.oid) > 0.1 * tables.reltuples
                from pg_class as tables
                where tables.oid = '{{ this }}'::regclass
            ) then
                analyze {{ this }}
                {%- if key_columns %} ({{ key_columns | join(', ') }}){% endif %};
            end if;
        end
        $$
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{% macro spark__analyze_table() -%}
    select 1
{%- endmacro %}

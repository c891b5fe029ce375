{#-
    A post-hook for tables: fresh planner statistics right after a build that changed more than a tenth of the
    rows (every build of a table model, the first of an incremental one, a new date of the dated marts while they
    hold few dates). A table dbt just created has none until autovacuum comes by, and the first query that joins
    it is planned as if it were empty (dim_customers took 4 s instead of 40 ms that way). A smaller change (a new
    day) leaves the statistics as they are, as autovacuum's default threshold would: analyzing the four tables
    over lines and days took 1.8 s of such a day's build at 10 million lines.
    A model that declares indexes has the columns of its indexes analyzed alone: those the marts are joined on and
    read by, and the analyze gives the table's row count too. A whole analyze reads every column of its sample
    (0.6 s for the features at 10 million lines, against 0.1 s; 0.3 s for dim_customers, on the marts' longest
    path). The other columns get theirs from autovacuum, which analyzes a table after the same tenth of its rows
    changed (within a minute of a build, here): until then a filter on one of them (rpt_insiders' is_insider) is
    planned with PostgreSQL's default selectivity.
    Spark plans joins on the sizes it measures while running (adaptive query execution): nothing to do there.
-#}
{% macro analyze_table() -%}
    {{ return(adapter.dispatch('analyze_table')()) }}
{%- endmacro %}

{% macro default__analyze_table() -%}
    {%- if config.get('materialized') in ('table', 'incremental') -%}
        {%- set key_columns = [] -%}
        {%- for index in config.get('indexes') or [] -%}
            {#- as dbt-postgres names them in the index it creates: as written, unquoted -#}
            {%- for column in index['columns'] if column not in key_columns -%}
                {%- do key_columns.append(column) -%}
            {%- endfor -%}
        {%- endfor -%}
        {#- reltuples is -1 before a first analyze or index build; the counts are this transaction's, the build's -#}
        do $$
        begin
            if (
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

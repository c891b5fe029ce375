{#-
    The load batches a build checks its lines for, as a select of batch_id: the loads this dbt command logged in
    int_invoice_lines__loaded_dates, and those not logged yet (tests that run before the log is built this time);
    every batch when there are none (a first build, a full refresh, nothing loaded since, a `dbt test` of its own).
    Lines of different batches never share a key (the id starts with the batch; the loader's unique index keeps a
    line's natural key once across batches), so checking the lines of these batches checks every line that changed.
    Every batch as well when the log does not exist yet.
-#}
{% macro batches_loaded_now() -%}
    {%- set log = api.Relation.create(database=target.database,
        schema=generate_schema_name('intermediate', none) | trim, identifier='int_invoice_lines__loaded_dates') -%}
    {%- set batches = api.Relation.create(database=target.database,
        schema=generate_schema_name('raw', none) | trim, identifier='load_batches') -%}
    {%- if execute and load_relation(log) is none -%}
        select batch_id from {{ batches }}
    {%- else -%}
        select logged.batch_id
        from {{ log }} as logged
        where logged.logged_by_invocation = '{{ invocation_id }}'
        union all
        select unlogged.batch_id
        from {{ batches }} as unlogged
        where not exists (
            select 1 from {{ log }} as logged
            where logged.batch_id = unlogged.batch_id and logged.batch_loaded_at = unlogged.loaded_at
        )
        union all
        select every_batch.batch_id
        from {{ batches }} as every_batch
        where
            not exists (select 1 from {{ log }} as logged where logged.logged_by_invocation = '{{ invocation_id }}')
            and not exists (
                select 1 from {{ batches }} as unlogged
                where not exists (
                    select 1 from {{ log }} as logged
                    where logged.batch_id = unlogged.batch_id and logged.batch_loaded_at = unlogged.loaded_at
                )
            )
    {%- endif -%}
{%- endmacro %}

{#-
    The load batches a build checks its lines for: the loads this dbt command logged in
    int_invoice_lines__loaded_dates, and those not logged yet (tests that run before the log is built this time);
    every batch when there are none (a first build, a full refresh, nothing loaded since, a `dbt test` of its own)
    or when the log does not exist yet. Lines of different batches never share a key (the id starts with the
    batch; the loader keeps a line's natural key once across batches), so checking the lines of
    these batches checks every line that changed.

    batches_loaded_now() returns the batch ids, queried when the test runs, or none for every batch: written into
    the test as numbers, so that PostgreSQL reads those batches through their index (a subquery is estimated at
    hundreds of batches, and the planner reads every line instead).
-#}
{% macro batches_loaded_now() -%}
    {{ return(adapter.dispatch('batches_loaded_now')()) }}
{%- endmacro %}

{#- Spark rebuilds the line tables whole from the files on every build: every batch is checked. -#}
{% macro spark__batches_loaded_now() -%}
    {{ return(none) }}
{%- endmacro %}

{% macro default__batches_loaded_now() -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set log = api.Relation.create(database=target.database,
        schema=generate_schema_name('intermediate', none) | trim, identifier='int_invoice_lines__loaded_dates') -%}
    {%- set batches = api.Relation.create(database=target.database,
        schema=generate_schema_name('raw', none) | trim, identifier='load_batches') -%}
    {%- if load_relation(log) is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        select logged.batch_id
        from {{ log }} as logged
        where logged.logged_by_invocation = '{{ invocation_id }}'
        union
        select unlogged.batch_id
        from {{ batches }} as unlogged
        where not exists (
            select 1 from {{ log }} as logged
            where logged.batch_id = unlogged.batch_id and logged.batch_loaded_at = unlogged.loaded_at
        )
        order by 1
    {%- endset -%}
    {%- set ids = run_query(query).columns[0].values() | map('int') | list -%}
    {{ return(ids if ids else none) }}
{%- endmacro %}

{#- `column` among the batches loaded now, as SQL (`1 = 1` when every batch is checked). -#}
{% macro in_batches_loaded_now(column='batch_id') -%}
    {%- set ids = batches_loaded_now() -%}
    {%- if ids is none -%}
        1 = 1
    {%- else -%}
        {{ column }} in ({{ ids | join(', ') }})
    {%- endif -%}
{%- endmacro %}

{#-
    For the tables built batch by batch (int_invoice_lines__loaded_dates, __rule_checks, __rule_counts): the ids of
    the load batches that `relation` does not hold in their current version (batch_id and loaded_at: new batches,
    and batches loaded again), queried when the model runs, before its pre-hook (incremental builds only; none
    otherwise, meaning every batch). Compared batch by batch, not against the latest loaded_at seen, so that a
    batch committed out of order is never skipped. Written into the model as numbers, so that the lines are read
    by batch through the index instead of all of them (a subquery is estimated at hundreds of batches).

    Each batch is looked up as its first `batch_loaded_at` at or after its own load (ordered, so that the
    (batch_id, batch_loaded_at) index answers it in one probe): as an anti join (`not exists`), PostgreSQL read
    the whole index of 10 million checked lines (0.6-1.6 s a build), and a `limit 1` probe by equality was planned
    as a table scan that stops at the first match, which for the newest batch is at the end.
-#}
{% macro batches_not_held(relation) -%}
    {%- if not execute or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        select batches.batch_id
        from {{ source('online_retail', 'load_batches') }} as batches
        left join lateral (
            select held.batch_loaded_at
            from {{ relation }} as held
            where held.batch_id = batches.batch_id and held.batch_loaded_at >= batches.loaded_at
            order by held.batch_loaded_at
            limit 1
        ) as first_held on true
        where first_held.batch_loaded_at is distinct from batches.loaded_at
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | map('int') | list) }}
{%- endmacro %}

{#- `column` among `ids` (from batches_not_held), as SQL: `1 = 1` for none (every batch), `1 = 0` for an empty list. -#}
{% macro in_batches(column, ids) -%}
    {%- if ids is none -%}
        1 = 1
    {%- elif ids -%}
        {{ column }} in ({{ ids | join(', ') }})
    {%- else -%}
        1 = 0
    {%- endif -%}
{%- endmacro %}

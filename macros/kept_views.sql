{#-
    PostgreSQL views are built again only when what makes them changed. dbt's view materialization creates a view
    under a temporary name, swaps it in, writes its comments and drops the old one on every build: 0.1-0.2 s per
    view, thirteen views in a day's run, most of them at the start of each build, where every later node waits for
    them. What a view is made of: its compiled SQL, its configuration (contract, grants, persist_docs, hooks,
    sql_header…), its columns as declared (names, types, descriptions) and its own description, and dbt's version.
    A build records a fingerprint of those in control.view_builds, with the view's oid and a hash of its definition
    as PostgreSQL holds it, and a later build leaves the view as it is when all three are the same: it runs none of
    the view's statements then, its hooks included (the marts' analyze is nothing for a view), and dbt reports
    `SELECT 0` for it. A view that was dropped (by the cascade of a table it reads, when dbt builds that table
    again), made again or replaced by anything else is built again. `--full-refresh` builds every view again, as
    must an upgrade of dbt-postgres alone (its version is not in the fingerprint; the version tag below changes
    whenever this materialization does). Spark builds its views as dbt does.
-#}
{% materialization view, adapter='postgres' %}
    {%- set fingerprint = view_fingerprint(sql) -%}
    {%- if not should_full_refresh() and recorded_view_fingerprint(this) == fingerprint -%}
        {#- dbt requires every model to run a statement named main -#}
        {%- call statement('main') -%}
            select 1 as kept_view where false  -- {{ this }} has not changed since it was built
        {%- endcall -%}
        {{ return({'relations': [this.incorporate(type='view')]}) }}
    {%- endif -%}
    {%- set relations = dbt.materialization_view_default() -%}
    {%- do record_view_fingerprint(this, fingerprint) -%}
    {{ return(relations) }}
{% endmaterialization %}

{#- The record, created before the build's nodes (on-run-start): two threads creating it at once would collide. -#}
{% macro create_view_builds_table() -%}
    {{ return(adapter.dispatch('create_view_builds_table')()) }}
{%- endmacro %}

{% macro default__create_view_builds_table() -%}
{%- endmacro %}

{% macro postgres__create_view_builds_table() -%}
    create schema if not exists {{ adapter.quote(generate_schema_name('control', none) | trim) }};
    create table if not exists {{ view_builds_table() }} (
        view_name text primary key,
        view_oid oid not null,
        definition_md5 text not null,
        fingerprint text not null,
        built_at timestamptz not null
    );
{%- endmacro %}

{% macro view_builds_table() -%}
    {{ return(adapter.quote(generate_schema_name('control', none) | trim) ~ '.view_builds') }}
{%- endmacro %}

{#- A view's schema-qualified name, without the database (a database copied from another keeps its records), as the
    text of a string literal. -#}
{% macro view_name(relation) -%}
    {{ return((adapter.quote(relation.schema) ~ '.' ~ adapter.quote(relation.identifier)) | replace("'", "''")) }}
{%- endmacro %}

{#- What a view is made of. -#}
{% macro view_fingerprint(sql) -%}
    {%- set parts = [
        'kept_views 2', dbt_version, sql, model.description,
        tojson(model.config, sort_keys=true), tojson(model.columns, sort_keys=true),
    ] -%}
    {{ return(local_md5(parts | join('\x1e'))) }}
{%- endmacro %}

{#- The fingerprint recorded for the view now at `relation`'s name, or none: no such view, another one, another
    definition, no record. -#}
{% macro recorded_view_fingerprint(relation) -%}
    {%- set name = view_name(relation) -%}
    {%- set query -%}
        select recorded.fingerprint
        from {{ view_builds_table() }} as recorded
        inner join pg_class as views
            on recorded.view_oid = views.oid
        where
            recorded.view_name = '{{ name }}'
            and views.oid = to_regclass('{{ name }}')
            and views.relkind = 'v'
            and recorded.definition_md5 = md5(pg_get_viewdef(views.oid))
    {%- endset -%}
    {%- set found = run_query(query).columns[0].values() -%}
    {{ return(found[0] if found else none) }}
{%- endmacro %}

{% macro record_view_fingerprint(relation, fingerprint) -%}
    {%- set name = view_name(relation) -%}
    {%- call statement('record_view_fingerprint') -%}
        insert into {{ view_builds_table() }} (view_name, view_oid, definition_md5, fingerprint, built_at)
        values (
            '{{ name }}', to_regclass('{{ name }}'), md5(pg_get_viewdef(to_regclass('{{ name }}'))),
            '{{ fingerprint }}', now()
        )
        on conflict (view_name) do update
        set
            view_oid = excluded.view_oid,
            definition_md5 = excluded.definition_md5,
            fingerprint = excluded.fingerprint,
            built_at = excluded.built_at
    {%- endcall -%}
    {%- do adapter.commit() -%}
{%- endmacro %}

{#-
    The feature cutoffs as a select of one `as_of_date` column (the as-of spine, never null), first of:
    - the `as_of_dates` var (a list of dates, a comma-separated string, or `month_ends`: every month-end of the
      staged lines and their last date, as `insiders backfill --monthly` labels them), or the `as_of_date` var,
      when you run dbt yourself;
    - the dates `insiders` requested in control.feature_dates (it passes dates through data, so that a new
      date does not make dbt parse the project again);
    - the last invoice date of the staged lines.
-#}
{% macro as_of_dates() -%}
    {%- set many = var('as_of_dates', none) -%}
    {%- set one = var('as_of_date', none) -%}
    {%- if many is string -%}
        {%- set many = many.split(',') | map('trim') | reject('equalto', '') | list -%}
    {%- endif -%}
    {%- if many == ['month_ends'] -%}
        {{ month_ends_between(
            '(select min(staged_lines.invoice_date) from ' ~ ref('stg_online_retail__invoice_lines') ~ ' as staged_lines)',
            '(select max(staged_lines.invoice_date) from ' ~ ref('stg_online_retail__invoice_lines') ~ ' as staged_lines)'
        ) }}
        union all
        select max(staged_lines.invoice_date) as as_of_date
        from {{ ref('stg_online_retail__invoice_lines') }} as staged_lines
        having count(*) > 0
    {%- elif many -%}
        select cast(as_of_date as date) as as_of_date
        from (values {% for day in many %}('{{ day }}'){{ ", " if not loop.last }}{% endfor %}) as spine (as_of_date)
    {%- elif one is not none and one != '' -%}
        select cast('{{ one }}' as date) as as_of_date
    {%- else -%}
        {{ requested_as_of_dates() }}
    {%- endif -%}
{%- endmacro %}

{#- The dates `insiders` requested in control.feature_dates, else the last invoice date of the staged lines. -#}
{% macro requested_as_of_dates() -%}
    {{ return(adapter.dispatch('requested_as_of_dates')()) }}
{%- endmacro %}

{% macro default__requested_as_of_dates() -%}
    select requested.as_of_date
    from {{ source('control', 'feature_dates') }} as requested
    union all
    select max(staged_lines.invoice_date) as as_of_date
    from {{ ref('stg_online_retail__invoice_lines') }} as staged_lines
    where not exists (select 1 from {{ source('control', 'feature_dates') }})
    -- an aggregate over no row is one null row: none at all when dates were requested
    having count(*) > 0
{%- endmacro %}

{#- Spark has no control tables (a run passes its dates as the as_of_dates var): the last invoice date. -#}
{% macro spark__requested_as_of_dates() -%}
    select max(staged_lines.invoice_date) as as_of_date
    from {{ ref('stg_online_retail__invoice_lines') }} as staged_lines
    having count(*) > 0
{%- endmacro %}

{#-
    The as-of date the segment marts present as current: the `as_of_date` var, else the date `insiders` set in
    control.current_as_of, else null (the latest date labelled).
-#}
{% macro current_as_of_date() -%}
    {{ return(adapter.dispatch('current_as_of_date')()) }}
{%- endmacro %}

{% macro default__current_as_of_date() -%}
    {%- set one = var('as_of_date', none) -%}
    {%- if one is not none and one != '' -%}
        cast('{{ one }}' as date)
    {%- else -%}
        (select max(current_as_of.as_of_date) from {{ source('control', 'current_as_of') }} as current_as_of)
    {%- endif -%}
{%- endmacro %}

{#- Spark has no control tables: the `as_of_date` var, else null (the latest date labelled). -#}
{% macro spark__current_as_of_date() -%}
    {%- set one = var('as_of_date', none) -%}
    {%- if one is not none and one != '' -%}
        cast('{{ one }}' as date)
    {%- else -%}
        cast(null as date)
    {%- endif -%}
{%- endmacro %}

{#-
    The rows of `relation` dated on or before the current as-of date (current_as_of_date(); every row when it is
    null). The marts that present one current date (dim_customers, rpt_insider_changes; rpt_insiders through
    dim_customers) read their history through this macro and present its latest date, so that they agree under
    `insiders run --as-of` and the as_of_date var alike. Marts and reports with one row per as-of date
    (fct_segment_summary, rpt_hypotheses, ...) keep every date labelled.
-#}
{% macro until_current_as_of(relation, date_column='as_of_date') -%}
    select dated.*
    from {{ relation }} as dated
    where dated.{{ date_column }} <= coalesce({{ current_as_of_date() }}, dated.{{ date_column }})
{%- endmacro %}

{#-
    For the incremental builds of the models kept by as-of date from the labels (fct_customer_segments and
    fct_segment_summary, which carry each date's run_id): the as-of dates whose latest run (stg_ml__model_runs) is
    not the run the model holds for them, as 'YYYY-MM-DD' strings; none (every date) when the model is built whole
    or holds no run_id yet (built by an earlier version).
    A run replaces its date's labels, so all of a date's rows carry one run: one row per date is read, through the
    index.
-#}
{% macro segment_dates_not_held() -%}
    {%- if not execute or not is_incremental() or not has_columns(this, ['run_id']) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        with latest_runs as (
            {{ latest_run_of_each_date() }}
        )
        select cast(latest_runs.as_of_date as {{ dbt.type_string() }}) as as_of_date
        from latest_runs
        where latest_runs.run_id is distinct from (
            select held.run_id
            from {{ this }} as held
            where held.as_of_date = latest_runs.as_of_date
            limit 1
        )
        order by 1
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | map('string') | list) }}
{%- endmacro %}

{#-
    For fct_segment_transitions' incremental builds: the pairs of consecutive labelled as-of dates that the model
    does not hold with both dates' latest runs, as ['YYYY-MM-DD', 'YYYY-MM-DD'] lists (earlier, later); none (every
    pair) when the model is built whole or holds no runs yet (built by an earlier version). A new last date adds
    one pair; a date labelled between two others replaces the pair that spanned it (same earlier date); a date
    labelled again changes the pairs on each side.
-#}
{% macro segment_date_pairs_not_held() -%}
    {%- if not execute or not is_incremental() or not has_columns(this, ['from_run_id', 'to_run_id']) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        with latest_runs as (
            {{ latest_run_of_each_date() }}
        ),

        date_pairs as (
            select
                as_of_date as from_as_of_date,
                run_id as from_run_id,
                lead(as_of_date) over (order by as_of_date) as to_as_of_date,
                lead(run_id) over (order by as_of_date) as to_run_id
            from latest_runs
        )

        select
            cast(date_pairs.from_as_of_date as {{ dbt.type_string() }}) as from_as_of_date,
            cast(date_pairs.to_as_of_date as {{ dbt.type_string() }}) as to_as_of_date
        from date_pairs
        where
            date_pairs.to_as_of_date is not null
            and not exists (
                select 1
                from {{ this }} as held
                where
                    held.from_as_of_date = date_pairs.from_as_of_date
                    and held.to_as_of_date = date_pairs.to_as_of_date
                    and held.from_run_id = date_pairs.from_run_id
                    and held.to_run_id = date_pairs.to_run_id
            )
        order by 1
    {%- endset -%}
    {%- set pairs = [] -%}
    {%- for row in run_query(query).rows -%}
        {%- do pairs.append([row[0] | string, row[1] | string]) -%}
    {%- endfor -%}
    {{ return(pairs) }}
{%- endmacro %}

{#- Each labelled as-of date and its latest run (ml.model_runs), which holds the date's labels: a run replaces its
    date's labels. -#}
{% macro latest_run_of_each_date() -%}
    select
        as_of_date,
        max(run_id) as run_id
    from {{ ref('stg_ml__model_runs') }}
    group by as_of_date
{%- endmacro %}

{#- Whether `relation` has every one of `column_names`, given in lower case: PostgreSQL folds unquoted names. -#}
{% macro has_columns(relation, column_names) -%}
    {%- set held = adapter.get_columns_in_relation(relation) | map(attribute='name') | map('lower') | list -%}
    {{ return(column_names | reject('in', held) | list | length == 0) }}
{%- endmacro %}

{#-
    An on-run-start hook: control.labelled_now holds, for this build, the as-of dates whose latest labelling run
    is not the one fct_customer_segments holds, as the build starts: the dates labelled since the segment marts
    were last built (every date on a first build or under --full-refresh; the latest date labelled when there is
    none, so that a build or `dbt test` that writes no labels checks the current one), and the dates of an
    earlier build whose checks did not all pass (macro mark_dates_labelled_now_checked, on-run-end): a failed
    check is checked again, not forgotten because the mart took in its date. The tests of the labels and of the
    segment history (uniqueness and not-null; the relationships to dim_customers still read every date up to the
    current one) read those dates' rows (the `where` placeholder `__labelled_now__`, macro get_where_subquery)
    instead of every date ever labelled, which grew by 90,000 rows a day at 10 million lines. Taken at the start,
    the dates are the same for the tests that run before fct_customer_segments is built and after. Spark has no
    control tables: its tests read every date.
-#}
{% macro record_dates_labelled_now() -%}
    {{ return(adapter.dispatch('record_dates_labelled_now')()) }}
{%- endmacro %}

{% macro default__record_dates_labelled_now() -%}
{%- endmacro %}

{% macro postgres__record_dates_labelled_now() -%}
    {%- set runs = adapter.get_relation(database=target.database, schema=generate_schema_name('ml', none) | trim,
        identifier='model_runs') -%}
    {%- set held = adapter.get_relation(database=target.database, schema=generate_schema_name('marts', none) | trim,
        identifier='fct_customer_segments') -%}
    create schema if not exists {{ adapter.quote(generate_schema_name('control', none) | trim) }};
    create table if not exists {{ labelled_now_table() }} (
        as_of_date date primary key,
        checked boolean not null default false
    );
    delete from {{ labelled_now_table() }} where checked;
    {%- if runs is not none %}
        insert into {{ labelled_now_table() }} (as_of_date, checked)
        with latest_runs as (
            select as_of_date, max(run_id) as run_id from {{ runs }} group by as_of_date
        ),

        not_held as (
            select latest_runs.as_of_date
            from latest_runs
            {%- if held is not none and not flags.FULL_REFRESH and has_columns(held, ['run_id']) %}
                where latest_runs.run_id is distinct from (
                    select held.run_id from {{ held }} as held where held.as_of_date = latest_runs.as_of_date limit 1
                )
            {%- endif %}
        )

        select as_of_date, false from not_held
        union all
        -- nothing labelled since: the latest date, so that a build or `dbt test` that writes no labels checks it
        -- (checked already, when it was labelled: the next build does not take it up again)
        select max(as_of_date), true from latest_runs where not exists (select 1 from not_held) having count(*) > 0
        on conflict (as_of_date) do nothing;
    {%- endif %}
{%- endmacro %}

{#- An on-run-end hook: the dates of control.labelled_now are checked once every test that read them passed in
    this build (a build that ran none, such as the features', leaves them for the next). -#}
{% macro mark_dates_labelled_now_checked(results) -%}
    {{ return(adapter.dispatch('mark_dates_labelled_now_checked')(results)) }}
{%- endmacro %}

{% macro default__mark_dates_labelled_now_checked(results) -%}
{%- endmacro %}

{% macro postgres__mark_dates_labelled_now_checked(results) -%}
    {%- set outcomes = [] -%}
    {%- for result in results if result.node.resource_type == 'test'
        and '__labelled_now__' in (result.node.config.get('where') or '') -%}
        {%- do outcomes.append(result.status in ('pass', 'warn')) -%}
    {%- endfor -%}
    {%- if outcomes and false not in outcomes -%}
        update {{ labelled_now_table() }} set checked = true
    {%- endif -%}
{%- endmacro %}

{% macro labelled_now_table() -%}
    {{ return(adapter.quote(generate_schema_name('control', none) | trim) ~ '.labelled_now') }}
{%- endmacro %}

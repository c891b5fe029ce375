{#-
    What differs between the engines the project runs on (PostgreSQL, the default; Spark), one dispatched macro
    each: the models call these and read the same on both. `default__` is PostgreSQL's SQL (the engine the project
    was written for), `spark__` Spark SQL's (Databricks dispatches to it too).
-#}

{#- `expression` as an exact decimal for arithmetic (PostgreSQL's unconstrained numeric; Spark's widest decimal
    with 18 places, which keeps a division's quotient to more places than any column stores). -#}
{% macro to_numeric(expression) -%}
    {{ return(adapter.dispatch('to_numeric')(expression)) }}
{%- endmacro %}

{% macro default__to_numeric(expression) -%}
    ({{ expression }})::numeric
{%- endmacro %}

{% macro spark__to_numeric(expression) -%}
    cast({{ expression }} as decimal(38, 18))
{%- endmacro %}

{#- The unbounded text type (PostgreSQL's text; Spark's string). Contracts name it the same way in the YAML. -#}
{% macro type_text() -%}
    {{ return(adapter.dispatch('type_text')()) }}
{%- endmacro %}

{% macro default__type_text() -%}
    text
{%- endmacro %}

{% macro spark__type_text() -%}
    string
{%- endmacro %}

{#-
    The incremental strategy that replaces the rows of the dates a build computes and keeps every other date: on
    PostgreSQL replace_dates by unique_key, a date column (macro get_incremental_replace_dates_sql); on Spark's
    Parquet tables (no Delta: no delete, no merge) insert_overwrite of the partitions a build writes, so the model
    is partitioned by that column (`partition_by`).
-#}
{% macro replace_dates_strategy() -%}
    {{ return(adapter.dispatch('replace_dates_strategy')()) }}
{%- endmacro %}

{% macro default__replace_dates_strategy() -%}
    {{ return('replace_dates') }}
{%- endmacro %}

{% macro spark__replace_dates_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}

{#-
    The materialisation of the tables built load by load and date by date (the line checks and counts, the load
    log, the customer invoices, products and daily sales): incremental on PostgreSQL, where loads append batches
    and a build takes in only what changed; a table rebuilt whole on Spark, which reads the invoice files where
    they lie (no load appends a batch, so there is nothing to take in by batch).
-#}
{% macro materialization_by_load() -%}
    {{ return(adapter.dispatch('materialization_by_load')()) }}
{%- endmacro %}

{% macro default__materialization_by_load() -%}
    {{ return('incremental') }}
{%- endmacro %}

{% macro spark__materialization_by_load() -%}
    {{ return('table') }}
{%- endmacro %}

{#- Every month-end from the month of `first_date` to the one before `last_date`'s, as a select of `as_of_date`. -#}
{% macro month_ends_between(first_date, last_date) -%}
    {{ return(adapter.dispatch('month_ends_between')(first_date, last_date)) }}
{%- endmacro %}

{% macro default__month_ends_between(first_date, last_date) -%}
    select cast(month_start + interval '1 month' - interval '1 day' as date) as as_of_date
    from generate_series(
        date_trunc('month', {{ first_date }}), date_trunc('month', {{ last_date }}) - interval '1 month',
        interval '1 month'
    ) as months (month_start)
{%- endmacro %}

{% macro spark__month_ends_between(first_date, last_date) -%}
    select last_day(month_start) as as_of_date
    from (
        select explode(sequence(
            trunc({{ first_date }}, 'month'),
            -- sequence() fails on a stop before its start: one month at least, filtered out below
            greatest(add_months(trunc({{ last_date }}, 'month'), -1), trunc({{ first_date }}, 'month')),
            interval 1 month
        )) as month_start
    ) as months
    where month_start < trunc({{ last_date }}, 'month')
{%- endmacro %}

{#- The timestamp type of the marts' run times (PostgreSQL's timestamp with time zone; Spark's timestamp, which is
    an instant shown in the session's time zone, UTC). Contracts name it the same way in the YAML. -#}
{% macro type_timestamp() -%}
    {{ return(adapter.dispatch('type_timestamp')()) }}
{%- endmacro %}

{% macro default__type_timestamp() -%}
    timestamp with time zone
{%- endmacro %}

{% macro spark__type_timestamp() -%}
    timestamp
{%- endmacro %}

{#- The floating-point type (PostgreSQL's double precision; Spark's double). -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}

{#- An aggregate: `value` of the row with the highest `order_by` in the group (PostgreSQL: the first of an array
    ordered descending; Spark: max_by). Ties on `order_by` pick any of them. -#}
{% macro value_at_max(value, order_by) -%}
    {{ return(adapter.dispatch('value_at_max')(value, order_by)) }}
{%- endmacro %}

{% macro default__value_at_max(value, order_by) -%}
    (array_agg({{ value }} order by {{ order_by }} desc))[1]
{%- endmacro %}

{% macro spark__value_at_max(value, order_by) -%}
    max_by({{ value }}, {{ order_by }})
{%- endmacro %}

{#-
    JSON written by the Python job (jsonb on PostgreSQL, a JSON string on Spark): json_text reads a top-level key
    as text (null when absent); json_array_items is a set-returning select expression, one row per item of the
    array under `key` (no row when the key is absent), each item as JSON that json_text reads in turn.
-#}
{% macro json_text(json, key) -%}
    {{ return(adapter.dispatch('json_text')(json, key)) }}
{%- endmacro %}

{% macro default__json_text(json, key) -%}
    ({{ json }} ->> '{{ key }}')
{%- endmacro %}

{% macro spark__json_text(json, key) -%}
    get_json_object({{ json }}, '$.{{ key }}')
{%- endmacro %}

{% macro json_array_items(json, key) -%}
    {{ return(adapter.dispatch('json_array_items')(json, key)) }}
{%- endmacro %}

{% macro default__json_array_items(json, key) -%}
    jsonb_array_elements(coalesce({{ json }} -> '{{ key }}', cast('[]' as jsonb)))
{%- endmacro %}

{#- from_json keeps an object item of an array<string> as its JSON text -#}
{% macro spark__json_array_items(json, key) -%}
    explode(coalesce(from_json(get_json_object({{ json }}, '$.{{ key }}'), 'array<string>'), array()))
{%- endmacro %}

{#- A number rounded to a whole number, for text: PostgreSQL writes round() of a double as "83", Spark as "83.0". -#}
{% macro round_to_whole(expression) -%}
    {{ return(adapter.dispatch('round_to_whole')(expression)) }}
{%- endmacro %}

{% macro default__round_to_whole(expression) -%}
    round({{ expression }})
{%- endmacro %}

{% macro spark__round_to_whole(expression) -%}
    cast(round({{ expression }}) as bigint)
{%- endmacro %}

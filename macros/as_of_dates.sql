{#-
    The feature cutoffs as a select of one `as_of_date` column (the as-of spine):
    - the `as_of_dates` var (a list of dates, or a comma-separated string) builds several cutoffs in one statement,
      as backfills and backtests need;
    - else the `as_of_date` var, one cutoff;
    - else the last invoice date of the staged lines.
-#}
{% macro as_of_dates() -%}
    {%- set many = var('as_of_dates', none) -%}
    {%- set one = var('as_of_date', none) -%}
    {%- if many is string -%}
        {%- set many = many.split(',') | map('trim') | reject('equalto', '') | list -%}
    {%- endif -%}
    {%- if many -%}
        select cast(as_of_date as date) as as_of_date
        from (values {% for day in many %}('{{ day }}'){{ ", " if not loop.last }}{% endfor %}) as spine (as_of_date)
    {%- elif one is none or one == '' -%}
        select max(invoice_date) as as_of_date from {{ ref('stg_online_retail__invoice_lines') }}
    {%- else -%}
        select cast('{{ one }}' as date) as as_of_date
    {%- endif -%}
{%- endmacro %}

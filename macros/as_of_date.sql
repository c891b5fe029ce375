{#-
    The feature cutoff as a SQL date expression: the `as_of_date` var when set,
    else the last invoice date of the staged lines.
-#}
{% macro as_of_date() -%}
    {%- set as_of = var('as_of_date', none) -%}
    {%- if as_of is none or as_of == '' -%}
        (select max(invoice_date) from {{ ref('stg_online_retail__invoice_lines') }})
    {%- else -%}
        cast('{{ as_of }}' as date)
    {%- endif -%}
{%- endmacro %}

{#-
    dbt's `where` config for data tests, plus one placeholder: `__current_as_of_date__` stands for the as-of date
    the segment marts present (dim_customers'). A test's `where` cannot call ref() (dbt renders it while
    parsing), and the relationships to dim_customers hold only up to that date: a customer first seen later is
    not in dim_customers yet. Used only by tests that ref dim_customers already (their `to`).
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- if '__current_as_of_date__' in where -%}
            {%- set current = '(select max(as_of_date) from ' ~ ref('dim_customers') ~ ')' -%}
            {%- set where = where | replace('__current_as_of_date__', current) -%}
        {%- endif -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') as dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

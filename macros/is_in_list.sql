{#-
    `expression in (values)` as a predicate that is valid for any list: `false` for an empty or null list
    (`in ()` is a syntax error). Numbers are written as they are, anything else as a quoted literal; a string is
    read as a comma-separated list (a var passed on the command line).
-#}
{% macro is_in_list(expression, values) -%}
    {%- if values is none -%}
        {%- set values = [] -%}
    {%- elif values is string -%}
        {%- set values = values.split(',') | map('trim') | reject('equalto', '') | list -%}
    {%- elif values is number -%}
        {%- set values = [values] -%}
    {%- endif -%}
    {%- if values | length == 0 -%}
        false
    {%- else -%}
        {{ expression }} in (
        {%- for value in values -%}
            {%- if value is number -%}{{ value }}{%- else -%}'{{ value | string | replace("'", "''") }}'{%- endif -%}
            {{- ", " if not loop.last -}}
        {%- endfor -%}
        )
    {%- endif -%}
{%- endmacro %}

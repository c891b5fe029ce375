{#- numerator / denominator as an exact decimal, null when the denominator is 0 or null. -#}
{% macro safe_divide(numerator, denominator) -%}
    {{ to_numeric(numerator) }} / nullif({{ denominator }}, 0)
{%- endmacro %}

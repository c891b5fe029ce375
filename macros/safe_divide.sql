{#- numerator / denominator, null when the denominator is 0 or null. -#}
{% macro safe_divide(numerator, denominator) -%}
    ({{ numerator }})::numeric / nullif({{ denominator }}, 0)
{%- endmacro %}

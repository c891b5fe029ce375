{#-
    Schemas are named by role (raw, staging, intermediate, marts, ml, control). The production target (`default`)
    uses the plain names; any other target (dev, ci, …) prefixes them with its name (dev_marts, ci_ml, …), so a
    development or CI build never writes into production tables. The Python job resolves the same names
    (python_jobs/insiders/settings.py, schema_name), and the sources' YAML repeats the rule for the schemas the
    Python job writes.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set role = (custom_schema_name or target.schema) | trim -%}
    {%- if target.name == 'default' -%}
        {{ role }}
    {%- else -%}
        {{ target.name }}_{{ role }}
    {%- endif -%}
{%- endmacro %}

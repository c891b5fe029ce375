{#-
    dbt's relationships test, except when the parent is not built yet: then there is nothing to point to and
    the test returns no row instead of failing on a missing table. dbt selects a test when any of its parents
    is selected, so building the feature or sales marts alone (a backtest's scratch database, a first
    `dbt build --select fct_customer_features`) also selects the relationships to dim_customers, one of the
    segment marts built later over the Python job's tables. Once dim_customers exists, every row is checked.
-#}
{% test relationships(model, column_name, to, field) %}
    {%- if execute and load_relation(to) is none -%}
        select null as from_field where false
    {%- else -%}
        {%- set parent = get_where_subquery(to) if '__loaded_now__' in (config.get('where') or '') else to -%}
        {{ adapter.dispatch('test_relationships', 'dbt')(model, column_name, parent, field) }}
    {%- endif -%}
{% endtest %}

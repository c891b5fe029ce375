{{ config(contract={'enforced': true}) }}

{#- The decision-tree rules behind Insider membership, one sentence each: what it takes to enter or stay. -#}

with rules as (

    select * from {{ ref('stg_ml__insider_rules') }}

),

readable as (

    select
        as_of_date,
        rule_number,
        rule_text,
        n_customers,
        n_insiders,
        rule_precision,
        rule_recall,
        tree_accuracy,
        'Customers with ' || rule_text || ' are Insiders '
        || {{ round_to_whole('100 * rule_precision') }} || '% of the time (' || n_customers || ' customers, '
        || {{ round_to_whole('100 * rule_recall') }} || '% of all Insiders).' as sentence
    from rules

)

select
    cast(as_of_date as date) as as_of_date,
    cast(rule_number as integer) as rule_number,
    cast(rule_text as {{ type_text() }}) as rule_text,
    cast(sentence as {{ type_text() }}) as sentence,
    cast(n_customers as integer) as n_customers,
    cast(n_insiders as integer) as n_insiders,
    cast(rule_precision as numeric(8, 6)) as rule_precision,
    cast(rule_recall as numeric(8, 6)) as rule_recall,
    cast(tree_accuracy as numeric(8, 6)) as tree_accuracy
from readable

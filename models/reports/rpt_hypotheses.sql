{{ config(contract={'enforced': true}) }}

{#-
    The seeds' hypotheses about the Insiders at every as-of date, measured by the Python job on the Insiders
    against the other customers (never against a base that contains them), with 95% bootstrap intervals and a
    permutation p-value where a difference is claimed.
-#}

with hypothesis_tests as (

    select * from {{ ref('stg_ml__hypothesis_tests') }}

)

select
    cast(as_of_date as date) as as_of_date,
    cast(hypothesis_id as {{ type_text() }}) as hypothesis_id,
    cast(statement as {{ type_text() }}) as statement,
    cast(unit as {{ type_text() }}) as unit,
    cast(insiders_value as numeric(18, 6)) as insiders_value,
    cast(insiders_value_low as numeric(18, 6)) as insiders_value_low,
    cast(insiders_value_high as numeric(18, 6)) as insiders_value_high,
    cast(compared_with as numeric(18, 6)) as compared_with,
    cast(compared_with_low as numeric(18, 6)) as compared_with_low,
    cast(compared_with_high as numeric(18, 6)) as compared_with_high,
    cast(comparison as {{ type_text() }}) as comparison,
    cast(p_value as numeric(10, 6)) as p_value,
    cast(holds as boolean) as holds
from hypothesis_tests

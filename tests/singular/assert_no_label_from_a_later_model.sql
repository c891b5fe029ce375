{#-
    Point in time: no as-of date is labelled by a model fitted on data after it.
    Returns the offending runs.
-#}
select
    run_id,
    as_of_date,
    data_cutoff_date
from {{ ref('stg_ml__model_runs') }}
where data_cutoff_date > as_of_date

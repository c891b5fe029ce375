{#-
    Pre-hook of the batch-by-batch line tables: before new batches are added, remove the lines of batches that are
    gone or were loaded again (--replace keeps the batch id but gives it a new loaded_at), so that a replaced
    file's lines are never counted twice, even when the new file has no line for a date the old one had.
    The batch versions to remove are found in `loaded_dates` (int_invoice_lines__loaded_dates, built before these
    tables, logs every version they ever held): the logged versions that are no longer loaded. Each is removed
    through the index on batch_id, so a build reads none of the lines of batches that did not change.
-#}
{% macro drop_lines_of_changed_batches(loaded_dates) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} as built
        using (
            select distinct
                logged.batch_id,
                logged.batch_loaded_at
            from {{ loaded_dates }} as logged
            where not exists (
                select 1
                from {{ source('online_retail', 'load_batches') }} as batches
                where batches.batch_id = logged.batch_id and batches.loaded_at = logged.batch_loaded_at
            )
        ) as gone
        where built.batch_id = gone.batch_id and built.batch_loaded_at = gone.batch_loaded_at
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

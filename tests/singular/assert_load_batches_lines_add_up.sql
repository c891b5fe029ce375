-- Per batch, lines read = loaded + duplicate + rejected, and the loaded and rejected counts are the lines the
-- batch holds in each raw table: a line is never counted twice, nor lost between the file and the tables. The
-- batches this build loads (every batch when it loads none, macro in_batches_loaded_now): the others have not changed.
with batches as (

    select
        batch_id,
        lines_read,
        lines_loaded,
        lines_duplicate,
        lines_rejected
    from {{ ref('stg_online_retail__load_batches') }}
    where {{ in_batches_loaded_now() }}

),

held_lines as (

    select
        batch_id,
        count(*) as n_lines
    from {{ ref('stg_online_retail__invoice_lines') }}
    where {{ in_batches_loaded_now() }}
    group by batch_id

),

rejected_lines as (

    select
        batch_id,
        count(*) as n_lines
    from {{ ref('stg_online_retail__rejected_invoice_lines') }}
    where {{ in_batches_loaded_now() }}
    group by batch_id

)

select
    batches.batch_id,
    batches.lines_read,
    batches.lines_loaded,
    batches.lines_duplicate,
    batches.lines_rejected,
    held_lines.n_lines as held,
    rejected_lines.n_lines as rejected
from batches
left join held_lines on batches.batch_id = held_lines.batch_id
left join rejected_lines on batches.batch_id = rejected_lines.batch_id
where
    batches.lines_read != batches.lines_loaded + batches.lines_duplicate + batches.lines_rejected
    or batches.lines_loaded != coalesce(held_lines.n_lines, 0)
    or batches.lines_rejected != coalesce(rejected_lines.n_lines, 0)

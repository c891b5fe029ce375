-- An impossible value: a line dated after the day its file was loaded (a clock or date-format error upstream).
-- Severity error: the run stops before clustering rather than build features with lines from the future. The
-- batches this build loads (macro in_batches_loaded_now): the lines of the others have not changed.
with lines as (

    select * from {{ ref('stg_online_retail__invoice_lines') }}

),

batches as (

    select * from {{ ref('stg_online_retail__load_batches') }}

)

select
    lines.batch_id,
    lines.invoice_no,
    lines.invoiced_at,
    batches.loaded_at
from lines
inner join batches on lines.batch_id = batches.batch_id
-- a day's slack: the file's clock and the server's may sit in different time zones
where
    {{ in_batches_loaded_now('lines.batch_id') }}
    and lines.invoiced_at > cast(batches.loaded_at as timestamp) + interval '1 day'

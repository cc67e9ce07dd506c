-- A view: one model reads it (or none: it is for analysts), so a table would only be written to be read once.
{{ config(materialized='view') }}
-- One row per page view, as parsed in stg_tracking__events. Which channel a page would be credited to is decided
-- in int_page_channels.
select * from {{ ref('stg_tracking__events') }}
where event_type = 'page'

-- A view: one model reads it (or none: it is for analysts), so a table would only be written to be read once.
{{ config(materialized='view') }}
-- One row per track call: the event name and properties, with lead and sign-up form submissions flagged and
-- the traits they carried (email, phone) normalised.
with tracks as (
    select * from {{ ref('stg_tracking__events') }}
    where event_type = 'track'
),

final as (
    select
        tracks.message_id,
        tracks.anonymous_id,
        tracks.user_id,
        tracks.event_at,
        tracks.loaded_at,
        tracks.event_name,
        {{ json_text('source.payload', 'properties') }} as properties,
        tracks.is_lead,
        tracks.trait_email,
        tracks.trait_phone,
        tracks.email_normalised,
        tracks.phone_normalised,
        tracks.page_url,
        tracks.carried_click_id_type,
        tracks.carried_click_id,
        tracks.carried_ttclid,
        tracks.advertising_consent,
        tracks.is_bot
    from tracks
    -- the load time too (the same row's, as staged): a filter on loaded_at then reaches the raw rows, so reading
    -- only the newest loads (the analysts' copy does) skips the older row groups of raw payloads
    join {{ source('tracking', 'tracking_events') }} as source
        on source.message_id = tracks.message_id and source._loaded_at = tracks.loaded_at
)

select * from final

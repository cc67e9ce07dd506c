-- A view: one model reads it (or none: it is for analysts), so a table would only be written to be read once.
{{ config(materialized='view') }}
-- One row per identify call: who the browser (anonymous_id) or user (user_id) said they are, with the email
-- and phone normalised (lower-case trimmed email; E.164 phone) for the identity graph.
with identifies as (
    select * from {{ ref('stg_tracking__events') }}
    where event_type = 'identify'
),

final as (
    select
        identifies.message_id,
        identifies.anonymous_id,
        identifies.user_id,
        identifies.event_at,
        identifies.loaded_at,
        {{ json_text('source.payload', 'traits.name') }} as trait_name,
        {{ json_text('source.payload', 'traits.firstName') }} as trait_first_name,
        {{ json_text('source.payload', 'traits.lastName') }} as trait_last_name,
        identifies.trait_email,
        identifies.trait_phone,
        identifies.email_normalised,
        identifies.phone_normalised,
        identifies.page_url,
        identifies.ip,
        identifies.user_agent,
        identifies.advertising_consent,
        identifies.is_bot
    from identifies
    -- the load time too (the same row's, as staged): a filter on loaded_at then reaches the raw rows, so reading
    -- only the newest loads (the analysts' copy does) skips the older row groups of raw payloads
    join {{ source('tracking', 'tracking_events') }} as source
        on source.message_id = identifies.message_id and source._loaded_at = identifies.loaded_at
)

select * from final

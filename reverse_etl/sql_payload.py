"""The TikTok event JSON built by DuckDB, for the delivery's fast path.

Building, hashing and encoding 100,000 events one by one in Python costs more than sending them, so DuckDB
builds the same JSON that ``reverse_etl.payload.build_event`` builds, vectorised: emails trimmed and lowercased,
E.164 phones, the external id, names and zip code SHA-256 hashed, city, state and country normalised, values
already hashed passed through, keys omitted when empty. Rows it cannot build exactly as Python would (a phone that
needs ``phonenumbers`` to reach E.164, non-ASCII text whose lowercasing or whitespace could differ) get a null
payload and are built by ``build_event``; a test holds the two builders to identical output. Every payload is
still validated against the JSON schema before it is sent.
"""

from __future__ import annotations

SHA = "'[0-9a-fA-F]{64}'"
E164 = r"'\+[1-9][0-9]{7,14}'"


def _trimmed(expr: str) -> str:
    # Python's str.strip(): every kind of leading and trailing whitespace
    return rf"regexp_replace({expr}, '^\s+|\s+$', '', 'g')"


def _parts(column: str) -> str:
    return (
        f"list_filter(list_transform(string_split(coalesce({column}, ''), ','), lambda v: {_trimmed('v')}), "
        "lambda v: v <> '')"
    )


def _json_list(expr: str) -> str:
    """A list of strings as a JSON array; DuckDB's to_json escapes each string."""
    return f"concat('[', array_to_string(list_transform({expr}, lambda h: to_json(h)), ','), ']')"


def _optional(key: str, value_json: str, condition: str) -> str:
    return f"case when {condition} then concat(',\"{key}\":', {value_json}) else '' end"


def _concat(*parts: str) -> str:
    # one concat() copies each part once; a chain of || copies the growing prefix at every step (5x slower).
    # concat() reads NULL as '', so the parts that can be NULL are ruled out by ``python_needed``
    return "concat(" + ", ".join(parts) + ")"


def prepared_columns(conversions: str = "c") -> str:
    """Select-list items computed once per row (DuckDB does not reuse a repeated expression): the hashed lists,
    the hashed external id, and whether Python must build the row."""
    c = conversions
    email_parts = _parts(c + ".emails")
    phone_parts = _parts(c + ".phones")
    customer = _trimmed(c + ".customer_id")
    name = f"coalesce({c}.customer_name, '')"
    first_h = _compact_hash(f"regexp_extract({name}, '^\\s*(\\S+)', 1)")
    last_h = _compact_hash(f"regexp_replace({name}, '^\\s*\\S+', '')")
    zip_h = _compact_hash(f"coalesce({c}.address_postal_code, '')")
    return f"""
        list_sort(list_distinct(list_transform(list_filter(list_transform({email_parts}, lambda e: lower(e)),
            lambda e: contains(e, '@') or regexp_full_match(e, {SHA})),
            lambda e: case when regexp_full_match(e, {SHA}) then lower(e) else sha256(e) end))) as _email_h,
        list_transform({phone_parts},
            lambda p: case when regexp_full_match(p, {SHA}) then lower(p)
                           when regexp_full_match(p, {E164}) then sha256(p) end) as _phone_h,
        case when coalesce({customer}, '') = '' then null
             when regexp_full_match({customer}, {SHA}) then lower({customer})
             else sha256({customer}) end as _external_h,
        regexp_matches(coalesce({c}.emails, '') || coalesce({c}.customer_id, ''), '[^\\x00-\\x7F]')
            or regexp_matches(concat({c}.customer_name, {c}.address_city, {c}.address_state, {c}.address_country,
                                     {c}.address_postal_code), '[^\\x20-\\x7E]')
            as _non_ascii,
        {first_h} as _first_h,
        {last_h} as _last_h,
        {zip_h} as _zip_h,
        {_place(c + ".address_city")} as _city_n,
        {_place(c + ".address_state")} as _state_n,
        {_place(c + ".address_country")} as _country_n"""


def _compact_hash(expr: str) -> str:
    """hashing.hash_compact for printable-ASCII text (other text is built in Python): spaces removed, lowercased,
    SHA-256, a 64-hex value passed through; null when nothing is left."""
    v = f"replace({expr}, ' ', '')"
    return (
        f"case when {v} = '' then null when regexp_full_match({v}, {SHA}) then lower({v}) else sha256(lower({v})) end"
    )


def _place(expr: str) -> str:
    """hashing.normalise_place: ASCII letters and digits only, lowercased; null when nothing is left."""
    return f"nullif(lower(regexp_replace(coalesce({expr}, ''), '[^A-Za-z0-9]', '', 'g')), '')"


def payload_columns(limited_data_use: bool, conversions: str = "c", contents: str = "ct") -> str:
    """Select-list items: ``sql_payload`` (the event as JSON text, or null where Python must build it).
    ``conversions`` must carry the columns of ``prepared_columns``."""
    c, ct = conversions, contents
    phones = f"list_sort(list_distinct({c}._phone_h))"
    # a phone that is neither hashed nor E.164 leaves a null hash: phonenumbers must place it, in Python; so do
    # rows missing a value the payload cannot be without (Python's builder decides what becomes of them)
    python_needed = (
        f"list_contains(list_transform({c}._phone_h, lambda h: h is null), true) or {c}._non_ascii "
        f"or {c}.event_name is null or {c}.event_time is null or {c}.event_id is null "
        f"or ({c}.purchase_id is not null and ({c}.currency is null or {c}.value is null))"
    )
    user = _concat(
        "'{'",
        "ltrim("
        + _concat(
            _optional("ttclid", f"to_json({c}.ttclid)", f"coalesce({c}.ttclid, '') <> ''"),
            _optional("ttp", f"to_json({c}.ttp)", f"coalesce({c}.ttp, '') <> ''"),
            _optional("email", _json_list(f"{c}._email_h"), f"len({c}._email_h) > 0"),
            _optional("phone", _json_list(phones), f"len({c}._phone_h) > 0"),
            _optional("external_id", f"concat('[', to_json({c}._external_h), ']')", f"{c}._external_h is not null"),
            *(
                _optional(key, f"to_json({c}.{col})", f"{c}.{col} is not null")
                for key, col in (
                    ("first_name", "_first_h"),
                    ("last_name", "_last_h"),
                    ("zip_code", "_zip_h"),
                    ("city", "_city_n"),
                    ("state", "_state_n"),
                    ("country", "_country_n"),
                )
            ),
            _optional("ip", f"to_json({c}.ip)", f"coalesce({c}.ip, '') <> ''"),
            _optional("user_agent", f"to_json({c}.user_agent)", f"coalesce({c}.user_agent, '') <> ''"),
            _optional("locale", f"to_json({c}.locale)", f"coalesce({c}.locale, '') <> ''"),
        )
        + ", ',')",
        "'}'",
    )
    properties = _concat(
        '\',"properties":{"currency":\'',
        f"to_json({c}.currency)",
        "',\"value\":'",
        f"to_json(cast({c}.value as double))",
        "',\"order_id\":'",
        f"to_json({c}.purchase_id)",
        '\',"content_type":"product"\'',
        f"coalesce({ct}.contents_json, '')",
        "'}'",
    )
    page = _optional(
        "page", _concat("'{\"url\":'", f"to_json({c}.page_url)", "'}'"), f"coalesce({c}.page_url, '') <> ''"
    )
    ldu = "true" if limited_data_use else "false"
    payload = _concat(
        "'{\"event\":'",
        f"to_json({c}.event_name)",
        "',\"event_time\":'",
        f"cast(epoch({c}.event_time) as bigint)",
        "',\"event_id\":'",
        f"to_json({c}.event_id)",
        "',\"user\":'",
        user,
        f"',\"limited_data_use\":{ldu}'",
        f"case when {c}.purchase_id is not null then {properties} else '' end",
        page,
        "'}'",
    )
    return f"case when {python_needed} then null else {payload} end as sql_payload"


def contents_json_query(contents_table: str) -> str:
    """One row per event: ``contents_json``, the ``,"contents":[...],"num_items":n`` part of the properties."""
    item = _concat(
        "'{\"content_id\":'",
        "to_json(cast(content_id as varchar))",
        "',\"content_type\":'",
        "to_json(coalesce(content_type, 'product'))",
        _optional("content_name", "to_json(content_name)", "coalesce(content_name, '') <> ''"),
        _optional("quantity", "cast(cast(quantity as bigint) as varchar)", "quantity is not null"),
        _optional("price", "to_json(cast(price as double))", "price is not null"),
        "'}'",
    )
    return f"""
        select event_id,
               ',"contents":[' || string_agg({item}, ',' order by line_key) || ']'
               || ',"num_items":'
               || cast(sum(case when coalesce(quantity, 0) = 0 then 1 else cast(quantity as bigint) end) as varchar)
                   as contents_json
        from {contents_table}
        where content_id is not null
        group by event_id
    """

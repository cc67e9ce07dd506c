{# Stripe minor units to major units by the currency's exponent (2 when the seed does not list it); null, never
   an error, for an amount that is not a number or does not fit. #}
{% macro to_major_units(amount, exponent) -%}
    {{ ttattribution.safe_cast(ttattribution.safe_cast(amount, 'float8') ~ ' / power(10, coalesce(' ~ exponent ~ ', 2))', 'decimal(18, 3)') }}
{%- endmacro %}

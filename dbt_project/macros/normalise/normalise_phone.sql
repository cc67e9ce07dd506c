{# E.164: "+" and 8 to 15 digits. "+..." and "00..." are international; 10 digits, or 11 starting with the
   default calling code "1", are read in the default country; anything else cannot be placed and is null. #}
{% macro normalise_phone(expr) -%}
    {%- set cc = var('default_phone_country_code') -%}
    {%- set digits = ttattribution.digits_only(expr) -%}
    (case
        when {{ expr }} is null then null
        when trim({{ expr }}) like '+%' then '+' || {{ digits }}
        when {{ digits }} like '00%' then '+' || substr({{ digits }}, 3)
        when length({{ digits }}) = 10 and '{{ cc }}' = '1' then '+1' || {{ digits }}
        when length({{ digits }}) = 11 and '{{ cc }}' = '1' and {{ digits }} like '1%' then '+' || {{ digits }}
        else null
    end)
{%- endmacro %}

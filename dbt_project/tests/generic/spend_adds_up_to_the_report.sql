{# The mart's spend in the account's currency is the report's, to the cent: no report row lost or counted twice
   by the joins (ads without a report row have no spend). #}
{% test spend_adds_up_to_the_report(model) %}
with mart as (select coalesce(sum(spend_account_currency), 0) as spend from {{ model }}),
report as (select coalesce(sum(spend), 0) as spend from {{ ref('stg_tiktok_ads__ad_stats') }} where ad_id is not null)
select mart.spend as mart_spend, report.spend as report_spend
from mart cross join report
where abs(mart.spend - report.spend) > 0.005
{% endtest %}

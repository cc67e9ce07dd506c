"""The marketing report: a self-contained HTML file built from the analysts' copy after each publish."""

import dagster as dg

from orchestration.defs.publishing import published_copy
from orchestration.resources import WarehouseResource
from reporting.marketing_report import write_report

REPORT_KEY = dg.AssetKey(["reports", "marketing_report"])


@dg.asset(
    key=REPORT_KEY,
    group_name="publishing",
    deps=[published_copy],
    kinds={"html"},
    owners=["team:growth"],
    # built from the copy, not the warehouse: no warehouse pool, so it never holds up a run or a delivery
    automation_condition=dg.AutomationCondition.eager(),
    output_required=False,
    description="One HTML file (REPORT_PATH) with revenue by first-touch channel per month, ROAS and CAC per TikTok "
    "campaign, our attributed purchases against TikTok's reported conversions, match-key coverage and delivery "
    "outcomes per day. Self-contained: charts are drawn when it is built and it loads nothing.",
)
def marketing_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    copy = warehouse.resolved_analytics_path
    if not copy.exists():
        context.log.info(f"no analysts' copy at {copy} yet: the report waits for the first publish")
        return
    last_copy = context.instance.get_latest_materialization_event(published_copy.key)
    last_report = context.instance.get_latest_materialization_event(context.asset_key)
    if (
        last_copy
        and last_report
        and last_copy.timestamp < last_report.timestamp
        and warehouse.resolved_report_path.exists()
    ):
        context.log.info("the analysts' copy has not changed since the last report: not built again")
        return
    result = write_report(copy, warehouse.resolved_report_path)
    context.log.info(f"marketing report at {result.path}: {result.charts} charts, {result.marks} marks")
    if result.sections_without_data:
        context.log.info("sections without data yet: " + ", ".join(result.sections_without_data))
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "open": dg.MetadataValue.url(result.path.as_uri()),
            "charts": result.charts,
            "marks": result.marks,
            "sections_without_data": ", ".join(result.sections_without_data) or "none",
            "seconds": round(result.seconds, 2),
        }
    )

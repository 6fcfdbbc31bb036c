"""Stage 9, report: turn a study folder into tables, figures and a self-contained HTML/Markdown report."""

from geodiv.report.html import format_summary, write_report
from geodiv.report.tables import dense_rank, main_table, paper_results, paper_table

__all__ = ["format_summary", "write_report", "dense_rank", "main_table", "paper_results", "paper_table"]

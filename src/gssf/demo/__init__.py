"""The main demo (``gssf demo`` / ``make demo``): similarities compared on real data, with a report."""
from gssf.demo.run import DEFAULT_TASKS, DEMO_TASKS, DemoTask, register_demo_task, run_demo

__all__ = ["DEFAULT_TASKS", "DEMO_TASKS", "DemoTask", "register_demo_task", "run_demo"]

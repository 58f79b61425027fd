"""What an operator's monitoring calls abnormal: thresholds shared by the KPI record, both
twins and the mitigation planner (below all of them, so none imports another for these).
"""

from __future__ import annotations

#: A link is congested at or above this utilisation of its capacity. 80 % is the usual
#: operator alarm level for backbone links (the planning rule of keeping links below 80 %
#: so a failure can be absorbed); it is a convention, not a measurement.
CONGESTION_THRESHOLD = 0.8

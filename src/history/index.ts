/** The history domain: the Application History Graph of a kernel session (pure, no I/O). */
export { applyCellExecution } from './apply-cell-execution.js';
export { cellExecutionId, type CellExecution, type CellExecutionId } from './cell-execution.js';
export { cellDependenciesOf, toAgentCell, toCellRecord, type CellDependencies } from './cell-record.js';
export { HistoryGraph, type CellExecutionUpdate } from './history-graph.js';
export { HISTORY_GRAPH_FORMAT_VERSION, historyGraphJsonSchema, type HistoryEdgeJson, type HistoryGraphJson } from './history-graph-json.js';
export { variableSnapshotId, type VariableSnapshot, type VariableSnapshotId } from './variable-snapshot.js';

import IR
import Importers

/// Placeholder public API while the matcher is written.
public enum ONNXImporter {}

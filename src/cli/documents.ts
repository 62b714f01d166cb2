/**
 * Reading Kubernetes objects from files (or stdin) for the offline subcommands: multi-document YAML (JSON is YAML),
 * empty documents skipped, `kind: List` expanded. I/O at the edge: `readSource` reads, the rest is pure.
 */
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { SluiceError } from '../errors.ts';

/** How the offline subcommands talk to the terminal (main.ts passes the process's; tests spawn the real CLI). */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** The whole of standard input. */
  readonly stdin: () => Promise<string>;
}

/** A file that cannot be read or is not YAML. */
export class DocumentError extends SluiceError {
  override name = 'DocumentError';

  constructor(message: string, options?: ErrorOptions) {
    super('DOCUMENT_INVALID', message, options);
  }
}

/** One object of a file: its position (1-based document number) and content. */
export interface SourceDocument {
  readonly document: number;
  readonly value: unknown;
}

/** The text of `path`, or stdin for `-`. Throws DocumentError naming the file. */
export async function readSource(path: string, io: Pick<CliIo, 'stdin'>): Promise<string> {
  if (path === '-') return io.stdin();
  try {
    return await readFile(path, 'utf8');
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : 'cannot be read';
    throw new DocumentError(`${path}: ${why}`, { cause });
  }
}

/**
 * The objects of a YAML stream, in order. A YAML syntax error is a DocumentError naming the document and line
 * (`document 2, line 5: …`); items of a `kind: List` count as documents of their own.
 */
export function parseDocuments(text: string): SourceDocument[] {
  const out: SourceDocument[] = [];
  for (const [i, doc] of parseAllDocuments(text).entries()) {
    const error = doc.errors[0];
    if (error !== undefined) {
      const line = error.linePos?.[0].line;
      throw new DocumentError(
        `document ${i + 1}${line === undefined ? '' : `, line ${line}`}: not valid YAML: ${(error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:$/, '')}`,
        { cause: error },
      );
    }
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    const items = isList(value) ? value.items : [value];
    for (const item of items) out.push({ document: i + 1, value: item });
  }
  return out;
}

function isList(value: unknown): value is { items: unknown[] } {
  if (typeof value !== 'object' || value === null) return false;
  const { kind, items } = value as { kind?: unknown; items?: unknown };
  return kind === 'List' && Array.isArray(items);
}

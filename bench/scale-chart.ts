/**
 * The scale chart in docs/performance.md: aggregate records per second against the number of concurrent
 * partitions, consumer and COPY floor, one panel per regime and batch size, as a dependency-free SVG.
 */
interface Row {
  regime: string;
  batchSize: number;
  n: number;
  consumer: { recordsPerSecond: number };
  floor: { recordsPerSecond: number };
}

const SERIES = [
  { name: 'consumer', color: '#1f77b4', value: (r: Row) => r.consumer.recordsPerSecond },
  { name: 'COPY floor', color: '#2ca02c', value: (r: Row) => r.floor.recordsPerSecond },
];

export function renderScaleChart(rows: readonly Row[]): string {
  const panels = [...new Set(rows.map((r) => `${r.regime}|${r.batchSize}`))].map((key) =>
    rows.filter((r) => `${r.regime}|${r.batchSize}` === key),
  );
  const columns = 2;
  const pw = 380;
  const ph = 260;
  const width = columns * pw + 40;
  const height = Math.ceil(panels.length / columns) * ph + 80;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" ` +
      `font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" font-size="15" text-anchor="middle">Aggregate records per second by ` +
      `concurrent partitions (one process each)</text>`,
  ];
  SERIES.forEach((s, i) => {
    const x = width / 2 - 120 + i * 140;
    parts.push(
      `<line x1="${x}" x2="${x + 25}" y1="42" y2="42" stroke="${s.color}" stroke-width="2.5"/><text ` +
        `x="${x + 31}" y="46">${s.name}</text>`,
    );
  });
  for (const [p, panel] of panels.entries())
    parts.push(...renderPanel(panel, 20 + (p % columns) * pw, 60 + Math.floor(p / columns) * ph, pw, ph));
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function renderPanel(rows: readonly Row[], left: number, top: number, w: number, h: number): string[] {
  const m = { left: 60, right: 20, top: 30, bottom: 40 };
  const ns = rows.map((r) => r.n);
  const nMax = Math.max(...ns, 2);
  const yMax = niceCeiling(Math.max(...rows.flatMap((r) => SERIES.map((s) => s.value(r)))));
  const x = (n: number) => left + m.left + ((n - 1) / (nMax - 1)) * (w - m.left - m.right);
  const y = (v: number) => top + h - m.bottom - (v / yMax) * (h - m.top - m.bottom);
  const first = rows[0]!;
  const parts = [
    `<text x="${left + w / 2}" y="${top + 16}" text-anchor="middle" font-size="13">${first.regime}, batches of ` +
      `${first.batchSize.toLocaleString('en-US')}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (yMax / 4) * i;
    parts.push(`<line x1="${x(1)}" x2="${x(nMax)}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`);
    parts.push(
      `<text x="${x(1) - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v).toLocaleString('en-US')}</text>`,
    );
  }
  for (const n of ns) parts.push(`<text x="${x(n)}" y="${top + h - m.bottom + 16}" text-anchor="middle">${n}</text>`);
  parts.push(`<text x="${(x(1) + x(nMax)) / 2}" y="${top + h - 6}" text-anchor="middle">partitions (N)</text>`);
  for (const s of SERIES) {
    parts.push(
      `<polyline points="${rows.map((r) => `${x(r.n)},${y(s.value(r))}`).join(' ')}" fill="none" ` +
        `stroke="${s.color}" stroke-width="2.5"/>`,
    );
    for (const r of rows) parts.push(`<circle cx="${x(r.n)}" cy="${y(s.value(r))}" r="3.5" fill="${s.color}"/>`);
  }
  return parts;
}

/** 1, 2 or 5 times a power of ten, at least `v`. */
function niceCeiling(v: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(v, 1)));
  return [1, 2, 5, 10].map((k) => k * p).find((c) => c >= v) ?? 10 * p;
}

/**
 * The throughput chart in docs/performance.md: records per second against batch size for the three writers, log-log, as
 * a dependency-free SVG.
 */
interface Row {
  size: number;
  consumer: { recordsPerSecond: number };
  perMessage: { recordsPerSecond: number };
  copy: { recordsPerSecond: number };
}

export function renderChart(rows: readonly Row[]): string {
  const width = 800;
  const height = 420;
  const m = { left: 80, right: 220, top: 40, bottom: 60 };
  const series = [
    { name: 'consumer (set-based)', color: '#1f77b4', values: rows.map((r) => r.consumer.recordsPerSecond) },
    { name: 'COPY floor', color: '#2ca02c', values: rows.map((r) => r.copy.recordsPerSecond) },
    { name: 'per-message writer', color: '#d62728', values: rows.map((r) => r.perMessage.recordsPerSecond) },
  ];
  const all = series.flatMap((s) => s.values).filter((v) => v > 0);
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...all)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...all)));
  const sizes = rows.map((r) => r.size);
  const xMin = Math.log10(Math.min(...sizes));
  const xMax = Math.log10(Math.max(...sizes));
  const x = (size: number) => m.left + ((Math.log10(size) - xMin) / (xMax - xMin || 1)) * (width - m.left - m.right);
  const y = (v: number) =>
    height -
    m.bottom -
    ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * (height - m.top - m.bottom);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" ` +
      `font-size="12">`,
  );
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(
    `<text x="${width / 2 - 60}" y="22" font-size="15" text-anchor="middle">Records per second by batch size ` +
      `(log-log)</text>`,
  );
  for (let e = Math.log10(yMin); e <= Math.log10(yMax); e++) {
    const yy = y(10 ** e);
    parts.push(`<line x1="${m.left}" x2="${width - m.right}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`);
    parts.push(`<text x="${m.left - 8}" y="${yy + 4}" text-anchor="end">${(10 ** e).toLocaleString('en-US')}</text>`);
  }
  for (const size of sizes) {
    parts.push(`<line x1="${x(size)}" x2="${x(size)}" y1="${m.top}" y2="${height - m.bottom}" stroke="#eee"/>`);
    parts.push(
      `<text x="${x(size)}" y="${height - m.bottom + 18}" text-anchor="middle">${size.toLocaleString('en-US')}</text>`,
    );
  }
  parts.push(
    `<text x="${(m.left + width - m.right) / 2}" y="${height - 18}" text-anchor="middle">records per batch</text>`,
  );
  parts.push(`<text transform="translate(20 ${height / 2}) rotate(-90)" text-anchor="middle">records / second</text>`);
  series.forEach((s, i) => {
    const points = s.values.map((v, j) => `${x(sizes[j]!)},${y(Math.max(v, yMin))}`).join(' ');
    parts.push(`<polyline points="${points}" fill="none" stroke="${s.color}" stroke-width="2.5"/>`);
    for (const [j, v] of s.values.entries())
      parts.push(`<circle cx="${x(sizes[j]!)}" cy="${y(Math.max(v, yMin))}" r="4" fill="${s.color}"/>`);
    const ly = m.top + 10 + i * 22;
    parts.push(
      `<line x1="${width - m.right + 15}" x2="${width - m.right + 40}" y1="${ly}" y2="${ly}" ` +
        `stroke="${s.color}" stroke-width="2.5"/>`,
    );
    parts.push(`<text x="${width - m.right + 46}" y="${ly + 4}">${s.name}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

/** Shape arithmetic on the host. */

/** Right-aligned numpy broadcast of shapes; shapes that do not broadcast are an error naming them. */
export function broadcastShapes(...shapes: (readonly number[])[]): number[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  return globalThis.Array.from({ length: rank }, (_, i) => {
    let d = 1;
    for (const s of shapes) {
      const x = s[s.length - rank + i] ?? 1;
      if (x !== 1) {
        if (d !== 1 && d !== x) throw new Error(`shapes ${shapes.map((sh) => `[${sh}]`).join(", ")} do not broadcast`);
        d = x;
      }
    }
    return d;
  });
}

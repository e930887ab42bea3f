using DistClip.Training.Steps;
using TorchSharp;
using static TorchSharp.torch;

namespace DistClip.Training.Distributed;

/// <summary>The reduction of one step, stage by stage (see <see cref="GradientReducer"/>).</summary>
internal sealed partial class GradientReducer
{
    /// <summary>One step's reduction: stages released in order, each reduced behind the caller's back.</summary>
    internal sealed class Reduction : IGradientReduction
    {
        private readonly GradientReducer _owner;
        private readonly GradientLayout _layout;
        private readonly CancellationTokenSource _cancel;
        private readonly Tensor?[] _grads;
        private readonly Dictionary<int, long[]> _rows; // per row-sparse parameter (by layout index): this rank's rows, sorted
        private readonly List<Task> _sent = []; // per released stage: its buckets summed
        private Task _chain = Task.CompletedTask;
        private int _released;
        private bool _disposed;

        public Reduction(GradientReducer owner, GradientLayout layout, Dictionary<int, long[]> rows, CancellationToken ct)
        {
            _owner = owner;
            _layout = layout;
            _rows = rows;
            _cancel = CancellationTokenSource.CreateLinkedTokenSource(ct);
            _grads = new Tensor?[layout.Parameters.Length];
        }

        public void Release(int stage)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (stage != _released || stage >= _layout.Stages.Length)
            {
                throw new InvalidOperationException($"Stages are released once each, in order: expected stage {_released} of {_layout.Stages.Length}, got {stage}.");
            }

            // On the caller's thread (tensor work belongs to its dispose scopes): note which gradients
            // this rank has, and bring them into the buffer.
            var range = _layout.Stages[stage];
            using (torch.NewDisposeScope())
            using (torch.no_grad())
            {
                for (int i = range.First; i < range.End; i++)
                {
                    _grads[i] = _layout.Parameters[i].grad?.DetachFromDisposeScope();
                    _owner._present[i] = _grads[i] is not null;
                    _owner._host[_layout.FlagIndex[i]] = _owner._present[i] ? 1f : 0f;
                }

                for (int b = range.FirstBucket; b < range.EndBucket; b++)
                {
                    _owner.Pack(_layout, _layout.Buckets[b], _grads);
                }
            }

            // The group serves one call at a time and every rank releases the same stages in the same
            // order, so chaining keeps every rank's sequence of all-reduces identical. Task.Run: the
            // ring may do work before its first await, which belongs off the caller's thread.
            var previous = _chain;
            _chain = Task.Run(() => SendAsync(previous, range), CancellationToken.None);
            _sent.Add(_chain);
            _released++;
        }

        /// <summary>Completes when released stage <paramref name="stage"/> is summed (its gradients in the buffer are final); for tests.</summary>
        internal Task Sent(int stage) => _sent[stage];

        public void Complete()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_released != _layout.Stages.Length)
            {
                throw new InvalidOperationException($"Stage {_released} of {_layout.Stages.Length} was never released.");
            }

            _chain.GetAwaiter().GetResult();
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            foreach (var bucket in _layout.Buckets)
            {
                _owner.Unpack(_layout, bucket, _grads);
            }
        }

        private async Task SendAsync(Task previous, GradientLayout.Stage range)
        {
            await previous.ConfigureAwait(false);
            for (int b = range.FirstBucket; b < range.EndBucket; b++)
            {
                var bucket = _layout.Buckets[b];
                if (bucket.RowSparse && _rows.TryGetValue(bucket.First, out var rows))
                {
                    await SendRowsAsync(bucket, rows).ConfigureAwait(false);
                }
                else
                {
                    await _owner._group.AllReduceSumAsync(_owner._host.AsMemory(bucket.Start, bucket.Length), _cancel.Token).ConfigureAwait(false);
                }
            }
        }

        /// <summary>
        /// Sums a lookup table's gradient over the rows any rank used: the ranks gather each other's row
        /// ids, and every rank derives the same union, so every rank takes the same path. Outside the
        /// union the gradient is zero on every rank, and zero is its sum.
        /// </summary>
        private async Task SendRowsAsync(GradientLayout.Bucket bucket, long[] rows)
        {
            var group = _owner._group;
            var slot = _layout.Slots[bucket.First];
            long tableRows = slot.Shape[0];
            int width = checked((int)slot.Shape[1]);
            var counts = new float[group.WorldSize];
            await group.AllGatherAsync(new float[] { rows.Length }, counts, _cancel.Token).ConfigureAwait(false);
            var sizes = new int[counts.Length];
            for (int r = 0; r < counts.Length; r++)
            {
                // A peer's count is bounded by the table before anything is sized by it.
                sizes[r] = counts[r] >= 0 && counts[r] <= tableRows && counts[r] == MathF.Floor(counts[r])
                    ? (int)counts[r]
                    : throw new InvalidDataException($"Rank {r} announced {counts[r]} used rows of a {tableRows}-row table.");
            }

            var ids = new float[sizes.Sum()];
            await group.AllGatherAsync(rows.Select(x => (float)x).ToArray(), ids, sizes, _cancel.Token).ConfigureAwait(false);
            var union = new SortedSet<long>();
            foreach (float id in ids)
            {
                if (id < 0 || id >= tableRows || id != MathF.Floor(id))
                {
                    throw new InvalidDataException($"A rank sent row id {id} of a {tableRows}-row table.");
                }

                union.Add((long)id);
            }

            // As rows only where that is less than half the bytes; the union is the same on every rank.
            long compactFloats = union.Count * (long)width;
            bool asRows = compactFloats * 2 < slot.Count;
            _owner.LastSparse = (union.Count, asRows);
            if (!asRows)
            {
                await group.AllReduceSumAsync(_owner._host.AsMemory(bucket.Start, bucket.Length), _cancel.Token).ConfigureAwait(false);
                return;
            }

            if (_owner._compact.Length < compactFloats)
            {
                _owner._compact = new float[compactFloats];
            }

            var table = _owner._host.AsMemory((int)slot.Offset, (int)slot.Count);
            var compact = _owner._compact.AsMemory(0, (int)compactFloats);
            int k = 0;
            foreach (long row in union)
            {
                table.Span.Slice((int)(row * width), width).CopyTo(compact.Span.Slice(k++ * width, width));
            }

            await group.AllReduceSumAsync(compact, _cancel.Token).ConfigureAwait(false);
            k = 0;
            foreach (long row in union)
            {
                compact.Span.Slice(k++ * width, width).CopyTo(table.Span.Slice((int)(row * width), width));
            }
        }

        public void Dispose()
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            if (!_chain.IsCompleted)
            {
                // Abandoned mid-way (the step failed): stop the wire (which fails the group, as any
                // cancelled collective does) and never return while it may still write into the buffer.
                _cancel.Cancel();
                try
                {
                    _chain.GetAwaiter().GetResult();
                }
                catch (Exception)
                {
                    // The step's own failure is the one the caller sees.
                }
            }

            foreach (var g in _grads)
            {
                g?.Dispose();
            }

            _cancel.Dispose();
            _owner._active = false;
        }
    }
}

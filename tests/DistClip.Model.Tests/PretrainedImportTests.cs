using System.IO.Compression;
using DistClip.Config;
using DistClip.Model.Import;
using TorchSharp.PyBridge;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace DistClip.Model.Tests;

/// <summary>
/// Importing published-format CLIP weights. The parity fixture (Fixtures/parity, made by
/// scripts/parity/make_fixture.py from openai/CLIP's model code in PyTorch) holds two tiny models'
/// state dicts and the embeddings PyTorch computed for fixed inputs.
/// </summary>
public sealed class PretrainedImportTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    [Fact]
    public void A_vit_state_dict_saved_by_torch_save_reproduces_pytorchs_embeddings()
    {
        using var model = new ClipModel(ClipConfig.Load(Fixture("tiny-vit.json")));

        var report = PretrainedImport.Load(model, Fixture("tiny-vit.pt"));

        output.WriteLine(report.Describe());
        Assert.True(report.IsComplete, report.Describe());
        Assert.True(report.Applied);
        Assert.Equal("pytorch", report.Format);
        AssertEmbeddingsMatch(model, "tiny-vit");
    }

    [Fact]
    public void A_float16_resnet_in_safetensors_reproduces_pytorchs_embeddings()
    {
        using var model = new ClipModel(ClipConfig.Load(Fixture("tiny-rn.json")));

        var report = PretrainedImport.Load(model, Fixture("tiny-rn.safetensors"));

        output.WriteLine(report.Describe());
        Assert.True(report.IsComplete, report.Describe());
        Assert.Equal("safetensors", report.Format);
        Assert.Contains(report.Notes, n => n.Contains("from Float16 to Float32", StringComparison.Ordinal));
        Assert.Contains("visual.layer1.0.bn1.running_var", report.Loaded); // BatchNorm statistics are imported too
        AssertEmbeddingsMatch(model, "tiny-rn");
    }

    [Fact]
    public void A_mismatched_model_is_refused_naming_every_difference_and_left_untouched()
    {
        var config = ClipConfig.Load(Fixture("tiny-vit.json"));
        config = config with { EmbedDim = 16, Text = config.Text with { Layers = 1 } };
        using var model = new ClipModel(config);
        using var before = model.state_dict()["visual.conv1.weight"].clone();

        var error = Assert.Throws<PretrainedImportException>(() => PretrainedImport.Load(model, Fixture("tiny-vit.pt")));

        Assert.Contains("text_projection: file [32, 24], model [32, 16]", error.Message);
        Assert.Contains("visual.proj: file [32, 24], model [32, 16]", error.Message);
        Assert.Contains("transformer.resblocks.1.attn.in_proj_weight [96, 32]", error.Message);
        Assert.NotNull(error.Report);
        Assert.Contains(error.Report!.Unexpected, u => u.Name == "transformer.resblocks.1.mlp.c_fc.bias");
        Assert.False(error.Report.Applied);
        Assert.True(model.state_dict()["visual.conv1.weight"].equal(before).all().item<bool>(), "a refused import must not change the model");
    }

    [Fact]
    public void A_partial_import_copies_what_matches_and_reports_the_rest()
    {
        var config = ClipConfig.Load(Fixture("tiny-vit.json"));
        using var model = new ClipModel(config with { Text = config.Text with { Layers = 3 } });

        var report = PretrainedImport.Load(model, Fixture("tiny-vit.pt"), new PretrainedImportOptions { AllowPartial = true });

        Assert.True(report.Applied);
        Assert.False(report.IsComplete);
        Assert.Empty(report.Unexpected);
        Assert.Empty(report.ShapeMismatches);
        Assert.Equal(12, report.Missing.Count); // every tensor of the third text block
        Assert.All(report.Missing, m => Assert.StartsWith("transformer.resblocks.2.", m.Name, StringComparison.Ordinal));
        using var file = StateDictFile.Read(Fixture("tiny-vit.pt"));
        Assert.True(model.state_dict()["visual.proj"].equal(file.Tensors["visual.proj"]).all().item<bool>());
    }

    [Fact]
    public void Data_parallel_prefixes_and_openai_metadata_are_handled_and_reported()
    {
        string path = Path.Combine(Path.GetTempPath(), $"distclip-import-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var source = StateDictFile.Read(Fixture("tiny-vit.pt")))
            {
                var renamed = source.Tensors.ToDictionary(kv => "module." + kv.Key, kv => kv.Value);
                renamed["module.input_resolution"] = tensor(32L);
                renamed["module.context_length"] = tensor(12L);
                using var stream = File.Create(path);
                Safetensors.SaveStateDict(stream, renamed);
            }

            using var model = new ClipModel(ClipConfig.Load(Fixture("tiny-vit.json")));
            var report = PretrainedImport.Load(model, path);

            Assert.True(report.IsComplete, report.Describe());
            Assert.Contains(report.Notes, n => n.Contains("'module.' prefix", StringComparison.Ordinal));
            Assert.Equal(["context_length", "input_resolution"], report.Ignored.Select(i => i.Name).Order(StringComparer.Ordinal));
            AssertEmbeddingsMatch(model, "tiny-vit");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_torchscript_archive_is_refused_with_the_conversion_command()
    {
        string path = Path.Combine(Path.GetTempPath(), $"distclip-jit-{Guid.NewGuid():N}.pt");
        try
        {
            using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
            {
                zip.CreateEntry("ViT-B-32/data.pkl");
                zip.CreateEntry("ViT-B-32/code/__torch__/model.py");
            }

            var error = Assert.Throws<PretrainedImportException>(() => StateDictFile.Read(path));

            Assert.Contains("TorchScript", error.Message);
            Assert.Contains("torch.jit.load", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_file_in_no_known_format_or_absent_is_a_clear_error()
    {
        string path = Path.Combine(Path.GetTempPath(), $"distclip-junk-{Guid.NewGuid():N}.bin");
        try
        {
            File.WriteAllText(path, "not weights at all");
            Assert.Contains("neither a PyTorch zip state dict nor a safetensors file", Assert.Throws<PretrainedImportException>(() => StateDictFile.Read(path)).Message);
        }
        finally
        {
            File.Delete(path);
        }

        Assert.Contains("not found", Assert.Throws<PretrainedImportException>(() => StateDictFile.Read(path)).Message);
    }

    [Theory]
    [InlineData("overlap", "overlaps", 1)]
    [InlineData("overlap", "overlaps", 64)] // probe 6 of issue #15 as made: 64 MiB, 128 entries on the same bytes (8 GiB if loaded)
    [InlineData("short", "do not fill", 1)]
    [InlineData("outside", "outside the", 1)]
    [InlineData("dtype", "unknown dtype", 1)]
    [InlineData("overflow", "its shape overflows", 1)] // 2^32 x 2^32 x 2^32 elements: a count that wraps a long
    public void A_safetensors_header_that_disagrees_with_its_file_is_refused_by_name_before_anything_is_allocated(string attack, string expected, int mebibytes)
    {
        // 128 entries over one range of the data: the loader would have allocated 128 times it (the probe: 6 GiB from 64 MiB).
        int floats = mebibytes << 18;
        var entries = Enumerable.Range(0, attack == "overlap" ? 128 : 1).Select(i => (Name: $"visual.w{i}", Json: attack switch
        {
            "overflow" => $$"""{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,{{floats * 4}}]}""",
            "short" => $$"""{"dtype":"F32","shape":[{{floats}},2],"data_offsets":[0,{{floats * 4}}]}""",
            "outside" => $$"""{"dtype":"F32","shape":[{{floats * 2}}],"data_offsets":[0,{{floats * 8}}]}""",
            "dtype" => $$"""{"dtype":"F128","shape":[{{floats / 4}}],"data_offsets":[0,{{floats * 4}}]}""",
            _ => $$"""{"dtype":"F32","shape":[{{floats}}],"data_offsets":[0,{{floats * 4}}]}""",
        }));
        byte[] header = System.Text.Encoding.UTF8.GetBytes("{" + string.Join(",", entries.Select(e => $"\"{e.Name}\":{e.Json}")) + "}");
        string path = Path.Combine(Path.GetTempPath(), $"distclip-hostile-{Guid.NewGuid():N}.safetensors");
        try
        {
            using (var file = File.Create(path))
            {
                file.Write(BitConverter.GetBytes((ulong)header.Length));
                file.Write(header);
                file.Write(new byte[floats * 4]);
            }

            long before = GC.GetAllocatedBytesForCurrentThread();
            var refused = Assert.Throws<PretrainedImportException>(() => StateDictFile.Read(path));
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            Assert.Contains("not safe to load", refused.Message);
            Assert.Contains("visual.w", refused.Message);
            Assert.Contains(expected, refused.Message);
            Assert.True(allocated < 8 << 20, $"refusing allocated {allocated >> 20} MB");
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// A PyTorch zip whose data.pkl is not a state dict but a call: GLOBAL of a function that runs a
    /// command, its argument, REDUCE. Python's pickle would run it; here it is refused as unreadable
    /// and nothing runs (the marker file the command would make stays absent).
    /// </summary>
    [Theory]
    [InlineData("posix", "system")]
    [InlineData("os", "system")]
    [InlineData("subprocess", "call")]
    [InlineData("builtins", "exec")]
    public void A_pickle_that_calls_a_global_is_refused_and_runs_nothing(string module, string function)
    {
        string directory = Directory.CreateTempSubdirectory("distclip-pickle-").FullName;
        string marker = Path.Combine(directory, "pwned");
        string path = Path.Combine(directory, "evil.pt");
        try
        {
            string argument = function == "exec" ? $"import os; os.system('touch {marker}')" : $"touch {marker}";
            byte[] text = System.Text.Encoding.UTF8.GetBytes(argument);
            using var pickle = new MemoryStream();
            pickle.Write([0x80, 0x02]); // PROTO 2
            pickle.Write(System.Text.Encoding.ASCII.GetBytes($"c{module}\n{function}\n")); // GLOBAL
            pickle.WriteByte((byte)'X'); // BINUNICODE
            pickle.Write(BitConverter.GetBytes(text.Length));
            pickle.Write(text);
            pickle.Write([0x85, (byte)'R', (byte)'.']); // TUPLE1, REDUCE, STOP
            using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
            {
                using (var entry = zip.CreateEntry("archive/data.pkl").Open())
                {
                    entry.Write(pickle.ToArray());
                }

                using (var version = zip.CreateEntry("archive/version").Open())
                {
                    version.Write("3\n"u8);
                }
            }

            var refused = Assert.Throws<PretrainedImportException>(() => StateDictFile.Read(path));

            Assert.Contains("cannot read it as a PyTorch state dict", refused.Message);
            Assert.False(File.Exists(marker), "the pickle's command ran");
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void The_config_is_inferred_from_names_and_shapes_as_openai_build_model_does()
    {
        using (var file = StateDictFile.Read(Fixture("tiny-vit.pt")))
        {
            // The tiny fixture uses 8-wide heads; CLIP's own models use 64.
            Assert.Equal(ClipConfig.Load(Fixture("tiny-vit.json")), PretrainedConfig.Infer(file, "tiny-vit", headWidth: 8));
        }

        foreach (string name in new[] { "vit-b-32", "rn50" })
        {
            var expected = ClipConfig.Load(name);
            Dictionary<string, long[]> shapes;
            using (var model = new ClipModel(expected))
            {
                shapes = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
            }

            Assert.Equal(expected, PretrainedConfig.Infer(shapes, name));
        }
    }

    private void AssertEmbeddingsMatch(ClipModel model, string name)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var expected = StateDictFile.Read(Fixture("expected.safetensors"));
        model.eval();
        var image = model.EncodeImage(expected.Tensors[name + ".images"]);
        var text = model.EncodeText(expected.Tensors["text.tokens"], expected.Tensors["text.lengths"]);
        AssertClose(expected.Tensors[name + ".image_features"], image, $"{name} image features");
        AssertClose(expected.Tensors[name + ".text_features"], text, $"{name} text features");
    }

    private void AssertClose(Tensor expected, Tensor actual, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        double worst = (expected - actual).abs().max().item<float>();
        output.WriteLine($"{what}: largest difference {worst:E2} (values up to {expected.abs().max().item<float>():F3})");
        Assert.True(worst <= Tolerance, $"{what}: largest difference from PyTorch {worst:E2}, allowed {Tolerance:E0}");
    }

    /// <summary>The committed fixture, read in place: walk up to DistClip.sln.</summary>
    private static string Fixture(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "DistClip.sln")))
            {
                return Path.Combine(dir.FullName, "tests", "DistClip.Model.Tests", "Fixtures", "parity", name);
            }
        }

        throw new InvalidOperationException($"no DistClip.sln above {AppContext.BaseDirectory}");
    }
}

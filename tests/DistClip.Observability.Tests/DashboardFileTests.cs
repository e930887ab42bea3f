using System.Text.Json;

namespace DistClip.Observability.Tests;

/// <summary>The dashboard file itself, without a run: the shape Grafana and the chart expect.</summary>
public sealed class DashboardFileTests
{
    private readonly Dashboard _dashboard = Dashboard.Load();

    [Fact]
    public void The_rows_are_health_throughput_step_time_learning_communication_and_data()
    {
        Assert.Equal(["Health", "Throughput", "Step time", "Learning", "Communication", "Data"], _dashboard.RowTitles);
    }

    [Fact]
    public void Every_panel_and_query_uses_the_datasource_variable()
    {
        var datasource = _dashboard.Variables.Single(v => v.GetProperty("name").GetString() == "datasource");
        Assert.Equal("datasource", datasource.GetProperty("type").GetString());
        Assert.Equal("prometheus", datasource.GetProperty("query").GetString());
        foreach (var panel in _dashboard.Panels)
        {
            Assert.True(panel.Json.GetProperty("datasource").GetProperty("uid").GetString() == "${datasource}", $"panel '{panel.Title}' names another data source");
            foreach (var target in panel.Json.GetProperty("targets").EnumerateArray())
            {
                Assert.Equal("${datasource}", target.GetProperty("datasource").GetProperty("uid").GetString());
            }
        }
    }

    [Fact]
    public void Every_training_query_is_filtered_by_the_rank_variable()
    {
        var rank = _dashboard.Variables.Single(v => v.GetProperty("name").GetString() == "rank");
        Assert.True(rank.GetProperty("multi").GetBoolean() && rank.GetProperty("includeAll").GetBoolean(), "rank should allow several ranks and All");

        var unfiltered = _dashboard.Panels
            .SelectMany(p => p.Expressions.Select(e => (p.Title, Expr: e)))
            .Where(x => x.Expr.Contains("distclip_train_", StringComparison.Ordinal) && !x.Expr.Contains("rank=~\"$rank\"", StringComparison.Ordinal))
            .ToList();
        Assert.Empty(unfiltered);
    }

    [Fact]
    public void Panels_do_not_overlap_on_the_grid()
    {
        var cells = new HashSet<(int X, int Y)>();
        foreach (var panel in _dashboard.Panels.Select(p => p.Json).Concat(Rows()))
        {
            var g = panel.GetProperty("gridPos");
            int x0 = g.GetProperty("x").GetInt32(), y0 = g.GetProperty("y").GetInt32();
            for (int x = x0; x < x0 + g.GetProperty("w").GetInt32(); x++)
            {
                for (int y = y0; y < y0 + g.GetProperty("h").GetInt32(); y++)
                {
                    Assert.True(cells.Add((x, y)), $"'{panel.GetProperty("title").GetString()}' overlaps another panel at ({x}, {y})");
                }
            }
        }
    }

    private IEnumerable<JsonElement> Rows() =>
        _dashboard.Root.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() == "row");
}
